"""The e-citizen accounts of Da Nang (8188): one per phone number, one per CMND."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the rotation needs it."""

    id: int
    username: str
    phone: str
    rotations: int


# Which uniqueness rule an account breaks, by the constraint's name.
PHONE_TAKEN, ID_TAKEN, USERNAME_TAKEN = "citizens_phone", "citizens_id_number", "citizens_username"

_TAKEN = """
SELECT (SELECT EXISTS (SELECT 1 FROM accounts.citizens WHERE phone = %(phone)s)),
       (SELECT EXISTS (SELECT 1 FROM accounts.citizens WHERE id_number = %(id_number)s))
"""


def taken(conn: psycopg.Connection, phone: str, id_number: str) -> str | None:
    """PHONE_TAKEN or ID_TAKEN when an account already has that phone or CMND, else None."""
    phone_taken, id_taken = conn.execute(_TAKEN, {"phone": phone, "id_number": id_number}).fetchone()
    return PHONE_TAKEN if phone_taken else ID_TAKEN if id_taken else None


_CREATE = """
INSERT INTO accounts.citizens
    (username, phone, id_number, full_name, birth_date, password_hash, password_issued_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


def create(conn: psycopg.Connection, *, username: str, phone: str, id_number: str,
           full_name: str, birth_date: dt.date, password_hash: str, now: dt.datetime) -> int:
    """A new account; raises UniqueViolation (see the constraint names above) when taken."""
    row = conn.execute(_CREATE, (username, phone, id_number, full_name, birth_date,
                                 password_hash, now)).fetchone()
    assert row is not None
    return row[0]


# SKIP LOCKED: two rotations running at once share out the accounts between them.
_DUE = """
SELECT id, username, phone, rotations FROM accounts.citizens
WHERE password_changed_at IS NULL AND password_issued_at <= %s
ORDER BY password_issued_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_REISSUE = """
UPDATE accounts.citizens
SET password_hash = %s, password_issued_at = %s, rotations = rotations + 1
WHERE id = %s
RETURNING rotations
"""


def due(conn: psycopg.Connection, issued_before: dt.datetime, limit: int) -> list[Account]:
    """Accounts whose issued password nobody changed since `issued_before`, locked."""
    with conn.cursor(row_factory=class_row(Account)) as cur:
        return cur.execute(_DUE, (issued_before, limit)).fetchall()


def reissue(conn: psycopg.Connection, account_id: int, password_hash: str,
            now: dt.datetime) -> int:
    """Replace the password of a locked due account; the rotation's number."""
    row = conn.execute(_REISSUE, (password_hash, now, account_id)).fetchone()
    assert row is not None
    return row[0]


_CHANGED = """
UPDATE accounts.citizens SET password_changed_at = %s, password_hash = NULL
WHERE username = %s
RETURNING id
"""


def password_changed(conn: psycopg.Connection, username: str, now: dt.datetime) -> bool:
    """Record that the citizen set a password of their own; False for an unknown user name."""
    return conn.execute(_CHANGED, (now, username)).fetchone() is not None
