"""The measuring kit lives in bench/ and ships in neither the wheel nor the image."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("workers", "parsers", "services", "replies")
KIT = ("bench.measure", "bench.gateway", "bench.phases", "bench.cpu", "bench.report",
       "bench.loadgen", "bench.dashboard", "bench.parser", "bench.kannel", "bench.kannel.peers",
       "bench.kannel.ceiling", "bench.kannel.through", "bench.__main__")


def test_the_kit_is_a_top_level_package() -> None:
    import importlib

    for name in KIT:
        module = importlib.import_module(name)
        assert ROOT / "bench" in (Path(module.__file__).resolve().parents), name


def test_the_wheel_packages_only_the_runtime() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]
    packages = find_namespace_packages(str(ROOT), include=find["include"])
    assert {p.split(".")[0] for p in packages} == set(SHIPPED)


def test_the_image_copies_the_runtime_and_not_the_kit() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    sources = {source for line in re.findall(r"^COPY\s+(.*)$", dockerfile, re.M)
               for source in line.split()[:-1] if not source.startswith("--")}
    assert set(SHIPPED) <= sources
    assert not [s for s in sources if s in (".", "./") or s.split("/")[0] == "bench"]


def test_the_runtime_imports_nothing_of_the_kit() -> None:
    found = []
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom)
                         and not node.level else [])
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n == "bench" or n.startswith("bench.")]
    assert found == []
