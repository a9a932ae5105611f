"""The shape of replies/: imports follow the message's way, modules stay readable in one sitting."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
