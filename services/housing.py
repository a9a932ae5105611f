"""Housing queue (1414, `4`): the queue number of a person, or of the sender themself."""

from __future__ import annotations

import psycopg

from parsers import Command
from services.handler import Reply, Request
from services.stores import housing, mbg, persons

NAME = "housing_queue"


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """Checks in the order of the seed's table: sender in MBG, sender's status, then the IIN."""
    sender_iin = mbg.iin_by_phone(conn, request.sender)
    if sender_iin is None:
        return Reply(NAME, "not_in_mbg")
    if not persons.is_valid(conn, sender_iin):
        return Reply(NAME, "status_invalid")
    if not isinstance(request.parsed, Command):
        return Reply(NAME, "no_data")
    iin = request.parsed.args.get("iin") or sender_iin
    entry = housing.entry_by_iin(conn, iin)
    if entry is None:
        return Reply(NAME, "no_data")
    return Reply(NAME, "found", {
        "position": entry.position,
        "category": entry.category,
        "registered_on": entry.registered_on,
        "authority": entry.authority,
    })
