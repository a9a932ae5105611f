"""The checks every 1414 service makes of its sender first, in the seed tables' order."""

from __future__ import annotations

import psycopg

from replies.reply import Reply
from services.stores import mbg, persons


def checked_sender(conn: psycopg.Connection, service: str, phone: str) -> str | Reply:
    """The sender's IIN when the phone is in MBG and the person is valid; else the refusal."""
    iin = mbg.iin_by_phone(conn, phone)
    if iin is None:
        return Reply(service, "not_in_mbg")
    if not persons.is_valid(conn, iin):
        return Reply(service, "status_invalid")
    return iin
