"""The message store has one home: no SQL on its tables outside workers/messages/.

Every string literal (f-string parts too) of every module of workers/ and bench/ is
read with `ast`; a statement that reads or writes inbound, outbound, dead_letters or
receipts anywhere but workers/messages/ is a query that belongs in the package. The
modules of the store and of replay are each small enough to read in one sitting.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import psycopg
import pytest

from services.stores import mbg
from tests.support.personas import add_persona

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "workers" / "messages"
TABLES = ("inbound", "outbound", "dead_letters", "receipts")
# SQL keywords are upper case in this code base, which keeps prose ("a reply from outbound
# ...") and names (`dead_letters` the command, "govsms_dead_letters" the metric) out.
SQL_ON_STORE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN|TRUNCATE|TABLE)\s+(?:ONLY\s+)?(?:public\.)?"
    rf"(?:{'|'.join(TABLES)})\b")
MAX_LINES = 400


def literals(source: str) -> list[tuple[int, str]]:
    """Each string constant of a module, f-string parts included, with its line."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def store_queries(source: str) -> list[tuple[int, str]]:
    """The string literals of `source` that query a table of the message store."""
    return [(line, match.group(0)) for line, text in literals(source)
            for match in [SQL_ON_STORE.search(text)] if match]


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(("source", "found"), [
    ('Q = "SELECT id FROM outbound WHERE id = %s"', [(1, "FROM outbound")]),
    ('Q = f"""\nUPDATE inbound SET state = {s!r}\n"""', [(1, "UPDATE inbound")]),
    ('def f():\n    return "SELECT count(*) FROM dead_letters d JOIN inbound i"',
     [(2, "FROM dead_letters")]),
    ('Q = "INSERT INTO receipts (transport_id) VALUES (%s)"', [(1, "INTO receipts")]),
    ('Q = "SELECT 1 FROM replay.items"', []),
    ('"""Replies from outbound, the dead_letters command."""\nkey = "dead_letters"', []),
])
def test_the_detector_finds_store_sql_and_only_that(source: str,
                                                    found: list[tuple[int, str]]) -> None:
    assert store_queries(source) == found


def test_the_store_package_is_where_its_sql_is() -> None:
    """The detector sees the package's own queries, so an empty result elsewhere means none."""
    found = {path.name for path in _modules("workers/messages")
             if store_queries(path.read_text(encoding="utf-8"))}
    assert {"inbound.py", "outbound.py", "dead.py", "reports.py", "metrics.py"} <= found


def test_no_query_on_the_message_store_outside_its_package() -> None:
    leaks = [f"{path.relative_to(ROOT)}:{line}: {what}"
             for path in _modules("workers", "bench") if STORE not in path.parents
             for line, what in store_queries(path.read_text(encoding="utf-8"))]
    assert leaks == [], "move these into workers/messages/:\n" + "\n".join(leaks)


@pytest.mark.parametrize("path", _modules("workers/messages", "workers/replay"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_store_and_replay_modules_are_small(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_the_runner_asks_the_registry_store_whether_mbg_is_empty(conn: psycopg.Connection) -> None:
    """`govsms run` seeds the demo dataset only into an empty MBG; the question is mbg's SQL."""
    assert "mbg.subscribers" not in (ROOT / "workers" / "local" / "run.py").read_text(encoding="utf-8")
    assert mbg.is_empty(conn)
    add_persona(conn, phone="+77010000001", iin="900101300001")
    assert not mbg.is_empty(conn)
