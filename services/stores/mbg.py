"""The mobile citizens base (MBG): which IIN a phone number belongs to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Literal

import psycopg

_IINS_BY_PHONE = "SELECT phone, iin FROM mbg.subscribers WHERE phone = ANY(%s)"


def iins_by_phone(conn: psycopg.Connection, phones: Sequence[str]) -> dict[str, str]:
    """The IIN registered to each of `phones` (E.164) that is in MBG, by phone: one query."""
    return dict(conn.execute(_IINS_BY_PHONE, (list(phones),)).fetchall()) if phones else {}


def iin_by_phone(conn: psycopg.Connection, phone: str) -> str | None:
    """The IIN registered to `phone` (E.164), or None when the number is not in MBG."""
    return iins_by_phone(conn, [phone]).get(phone)


_ANY = "SELECT EXISTS (SELECT 1 FROM mbg.subscribers)"


def is_empty(conn: psycopg.Connection) -> bool:
    """No phone number is in MBG yet (a fresh database, before any extract)."""
    return not conn.execute(_ANY).fetchone()[0]  # type: ignore[index]


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO mbg.subscribers (phone, iin) VALUES (%(phone)s, %(iin)s)
ON CONFLICT (phone) DO UPDATE SET iin = EXCLUDED.iin
"""

# A number belongs to one person and a person has one number: linking replaces both.
# Only a client that authenticated the IIN's holder may ask for it (services/otp.py).
_UNLINK = "DELETE FROM mbg.subscribers WHERE iin = %s OR phone = %s RETURNING phone, iin"
_LINK = "INSERT INTO mbg.subscribers (phone, iin) VALUES (%s, %s)"


def link(conn: psycopg.Connection, phone: str, iin: str) -> list[tuple[str, str]]:
    """Link `phone` to `iin`; the (phone, IIN) rows it replaced: the IIN's and the number's."""
    removed = [(row[0], row[1]) for row in conn.execute(_UNLINK, (iin, phone))]
    conn.execute(_LINK, (phone, iin))
    return removed


@dataclass(frozen=True, slots=True)
class Change:
    """One link or unlink as the audit keeps it: masked for the reader, digests to follow."""

    at: dt.datetime
    client: str
    action: Literal["link", "unlink"]
    iin_masked: str
    iin_digest: str
    old_phone_masked: str | None
    old_phone_digest: str | None
    new_phone_masked: str | None
    new_phone_digest: str | None


_AUDIT = """
INSERT INTO mbg.changes (at, client, action, iin_masked, iin_digest, old_phone_masked,
                         old_phone_digest, new_phone_masked, new_phone_digest)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def audit(conn: psycopg.Connection, changes: list[Change]) -> None:
    """Record links and unlinks in the audit trail."""
    with conn.cursor() as cur:
        cur.executemany(_AUDIT, [astuple(change) for change in changes])
