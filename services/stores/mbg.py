"""The mobile citizens base (MBG): which IIN a phone number belongs to."""

from __future__ import annotations

import psycopg

_IIN_BY_PHONE = "SELECT iin FROM mbg.subscribers WHERE phone = %s"


def iin_by_phone(conn: psycopg.Connection, phone: str) -> str | None:
    """The IIN registered to `phone` (E.164), or None when the number is not in MBG."""
    row = conn.execute(_IIN_BY_PHONE, (phone,)).fetchone()
    return row[0] if row else None


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO mbg.subscribers (phone, iin) VALUES (%(phone)s, %(iin)s)
ON CONFLICT (phone) DO UPDATE SET iin = EXCLUDED.iin
"""



# A number belongs to one person and a person has one number: linking replaces both.
_UNLINK = "DELETE FROM mbg.subscribers WHERE iin = %s OR phone = %s"
_LINK = "INSERT INTO mbg.subscribers (phone, iin) VALUES (%s, %s)"


def link(conn: psycopg.Connection, phone: str, iin: str) -> None:
    """Link `phone` to `iin`, replacing that IIN's previous number (and the number's owner)."""
    conn.execute(_UNLINK, (iin, phone))
    conn.execute(_LINK, (phone, iin))
