"""The shape of replies/: imports follow the message's way, modules stay readable in one sitting."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imported(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in `path`, at any depth (function-level ones too)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_replies_import_nothing_from_services_or_workers() -> None:
    upward = [(_name(path), module) for path in _modules("replies")
              for module, _ in _imported(path)
              if module.split(".")[0] in ("services", "workers")]
    assert upward == []


def test_reply_is_defined_in_replies_and_imported_from_there() -> None:
    reply = importlib.import_module("replies.reply")
    assert reply.Reply.__module__ == "replies.reply"
    from_handler = [_name(path) for path in _modules("replies", "services", "workers", "tests")
                    for module, names in _imported(path)
                    if module == "services.handler" and "Reply" in names]
    assert from_handler == []


def test_replies_modules_are_under_the_line_limit() -> None:
    long = {_name(path): n for path in _modules("replies")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_smpp_is_a_package_by_concept_and_throttle_sits_with_the_transports() -> None:
    smpp = ROOT / "replies" / "transports" / "smpp"
    assert not (ROOT / "replies" / "transports" / "smpp.py").exists()
    assert {p.name for p in smpp.glob("*.py")} >= {"__init__.py", "config.py", "link.py",
                                                   "transport.py"}
    # The package itself imports nothing, so taking its link does not load its transport.
    assert _imported(smpp / "__init__.py") == []
    assert not (ROOT / "replies" / "throttle.py").exists()
    assert importlib.import_module("replies.transports.throttle").bucket


def test_udhi_is_defined_once_where_the_udh_is_built() -> None:
    defined = [_name(path) for path in _modules("replies", "services", "workers", "parsers")
               for node in ast.parse(path.read_text(encoding="utf-8")).body
               if isinstance(node, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "UDHI" for t in node.targets)]
    assert defined == ["replies/encoding.py"]
    from replies import encoding
    from workers.ingest import smpp as smpp_ingest

    assert smpp_ingest.UDHI is encoding.UDHI


def test_smpp_ingest_takes_the_shared_link_not_the_sending_transport() -> None:
    imported = {module for module, _ in _imported(ROOT / "workers" / "ingest" / "smpp.py")}
    assert "replies.transports.smpp.link" in imported
    assert "replies.transports.smpp.transport" not in imported
    # Importing the inbound door loads none of the outbound transport's code.
    probe = ("import sys, workers.ingest.smpp; "
             "print(sorted(m for m in sys.modules if m.startswith('replies.transports.smpp')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    loaded = ast.literal_eval(out.strip())
    assert "replies.transports.smpp.link" in loaded
    assert "replies.transports.smpp.transport" not in loaded
