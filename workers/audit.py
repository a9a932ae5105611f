"""The audit trail: who looked up which message, who replayed what, who signed in.

Written by the operators' console and by `govsms trace` and `govsms dead-letters replay`.
A phone number asked for is kept as its masked form and its keyed digest (the retention
purge's), never in clear, so "who looked up this number?" is answered without storing it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

# A phone as the audit keeps it: (masked form, keyed digest), from retention.masker.
Phone = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing an operator did."""

    id: int
    at: dt.datetime
    operator: str
    action: str
    asked: str
    phone_masked: str | None
    phone_digest: str | None


_RECORD = """
INSERT INTO audit (operator, action, asked, phone_masked, phone_digest)
VALUES (%s, %s, %s, %s, %s)
"""


def record(conn: psycopg.Connection, operator: str, action: str, asked: str,
           phone: Phone | None = None) -> None:
    """Write down that `operator` did `action`, asking `asked` (no number in clear in it)."""
    masked, digest = phone if phone is not None else (None, None)
    conn.execute(_RECORD, (operator, action, asked, masked, digest))


_ENTRIES = """
SELECT id, at, operator, action, asked, phone_masked, phone_digest FROM audit
WHERE %(digest)s::text IS NULL OR phone_digest = %(digest)s
ORDER BY id DESC LIMIT %(limit)s
"""


def entries(conn: psycopg.Connection, *, limit: int = 200,
            phone_digest: str | None = None) -> list[Entry]:
    """The latest entries first; only those about one number's digest if given."""
    with conn.cursor(row_factory=class_row(Entry)) as cur:
        return cur.execute(_ENTRIES, {"digest": phone_digest, "limit": limit}).fetchall()


_REFUSED = """
SELECT count(*) FROM audit
WHERE action = 'sign_in_refused' AND operator = %s AND at > %s
"""


def refused_since(conn: psycopg.Connection, operator: str, since: dt.datetime) -> int:
    """Sign-ins refused to `operator` since `since`."""
    row = conn.execute(_REFUSED, (operator, since)).fetchone()
    assert row is not None
    return row[0]
