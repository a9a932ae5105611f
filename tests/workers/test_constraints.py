"""The pinned versions (deploy/constraints.txt) match what pyproject.toml asks for."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in (*project["dependencies"], *extras["test"],
                                     *extras["dashboard"])]


def test_every_dependency_is_pinned_within_its_range():
    pins = _pins()
    outside = {str(r): str(pins.get(canonicalize_name(r.name))) for r in _requirements()
               if canonicalize_name(r.name) not in pins
               or not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)}
    assert outside == {}


def test_every_line_is_an_exact_pin():
    lines = (ROOT / "deploy" / "constraints.txt").read_text().splitlines()
    assert lines and all(line.count("==") == 1 and " " not in line for line in lines)


def test_the_image_and_make_install_use_the_pins():
    assert "-c deploy/constraints.txt" in (ROOT / "deploy" / "Dockerfile").read_text()
    assert "-c deploy/constraints.txt" in (ROOT / "Makefile").read_text()
    assert "!deploy/constraints.txt" in (ROOT / "deploy" / "Dockerfile.dockerignore").read_text()
