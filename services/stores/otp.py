"""One-time codes: at most one live code per phone, kept as an HMAC, never in plain text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row, dict_row


@dataclass(frozen=True, slots=True)
class Code:
    """A live code as verification needs it."""

    id: int
    client: str
    purpose: str
    iin: str | None
    code_hash: str
    expires_at: dt.datetime
    attempts: int


_SUPERSEDE = "UPDATE otp.codes SET state = 'superseded' WHERE phone = %s AND state = 'active'"
_CREATE = """
INSERT INTO otp.codes (client, phone, purpose, iin, code_hash, created_at, expires_at, suppressed)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


def replace(conn: psycopg.Connection, *, client: str, phone: str, purpose: str, iin: str | None,
            code_hash: str, now: dt.datetime, expires_at: dt.datetime,
            suppressed: bool = False) -> int:
    """A new live code for `phone`; the previous one, if any, stops working."""
    conn.execute(_SUPERSEDE, (phone,))
    row = conn.execute(_CREATE, (client, phone, purpose, iin, code_hash, now, expires_at,
                                 suppressed)).fetchone()
    assert row is not None
    return row[0]


_LIVE = """
SELECT id, client, purpose, iin, code_hash, expires_at, attempts FROM otp.codes
WHERE phone = %s AND state = 'active'
FOR UPDATE
"""
_SET_STATE = "UPDATE otp.codes SET state = %s, attempts = %s WHERE id = %s"


def live(conn: psycopg.Connection, phone: str) -> Code | None:
    """The live code of `phone`, locked until the transaction ends."""
    with conn.cursor(row_factory=class_row(Code)) as cur:
        return cur.execute(_LIVE, (phone,)).fetchone()


def set_state(conn: psycopg.Connection, code_id: int, state: str, attempts: int) -> None:
    """Record a code's new state and its count of wrong tries."""
    conn.execute(_SET_STATE, (state, attempts, code_id))


_FAILURES = "SELECT count(*) FROM otp.failures WHERE phone = %s AND at > %s"
_FAILED = "INSERT INTO otp.failures (phone, at) VALUES (%s, %s)"
_FORGET = "DELETE FROM otp.failures WHERE phone = %s AND at <= %s"


def failures(conn: psycopg.Connection, phone: str, since: dt.datetime) -> int:
    """Failed checks of `phone` after `since`; older ones are dropped, they count no more."""
    conn.execute(_FORGET, (phone, since))
    row = conn.execute(_FAILURES, (phone, since)).fetchone()
    assert row is not None
    return row[0]


def record_failure(conn: psycopg.Connection, phone: str, at: dt.datetime) -> None:
    """Count a failed check against `phone`."""
    conn.execute(_FAILED, (phone, at))


_PURGE_CODES = """
DELETE FROM otp.codes WHERE id IN (
    SELECT id FROM otp.codes WHERE created_at < %s ORDER BY id LIMIT %s)
"""
_PURGE_FAILURES = """
DELETE FROM otp.failures WHERE ctid IN (
    SELECT ctid FROM otp.failures WHERE at < %s LIMIT %s)
"""


def purge(conn: psycopg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` codes made, and failed checks, before `before`; how many."""
    codes = conn.execute(_PURGE_CODES, (before, limit)).rowcount
    return codes + conn.execute(_PURGE_FAILURES, (before, limit)).rowcount


_OF_CLIENT = """
SELECT id, purpose, state, created_at, expires_at, attempts FROM otp.codes
WHERE id = %s AND client = %s
"""


def of_client(conn: psycopg.Connection, code_id: int, client: str) -> dict | None:
    """A code `client` asked for, without its phone, IIN or hash; None for another's."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_OF_CLIENT, (code_id, client)).fetchone()
