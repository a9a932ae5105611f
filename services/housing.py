"""Housing queue (1414, `4`): the queue number of a person, or of the sender themself."""

from __future__ import annotations

import psycopg

from parsers import Command
from replies.masking import mask_digits
from replies.reply import Reply
from services.handler import Request
from services.sender import checked_sender
from services.stores import housing

NAME = "housing_queue"


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """Sender in MBG, sender's status, then the IIN (the sender's own when none is given)."""
    sender = checked_sender(conn, NAME, request.sender)
    if isinstance(sender, Reply):
        return sender
    if not isinstance(request.parsed, Command):
        return Reply(NAME, "no_data")
    iin = request.parsed.args.get("iin") or sender
    entry = housing.entry_by_iin(conn, iin)
    if entry is None:
        return Reply(NAME, "no_data")
    return Reply(NAME, "found", {"iin": mask_digits(iin), "position": entry.position,
                                 "registered_on": entry.registered_on})
