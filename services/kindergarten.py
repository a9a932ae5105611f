"""Kindergarten queue (1414, `5`, `Очередь в детсад`): a child's place in the queue."""

from __future__ import annotations

import psycopg

from parsers import Command, ErrorCode
from replies.masking import mask_digits
from replies.reply import Reply
from services.handler import Request
from services.sender import checked_sender
from services.stores import kindergarten, persons

NAME = "kindergarten_queue"


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """Sender in MBG, sender's status, the child's IIN given, valid, then in the queue."""
    sender = checked_sender(conn, NAME, request.sender)
    if isinstance(sender, Reply):
        return sender
    parsed = request.parsed
    if not isinstance(parsed, Command):
        missing = parsed.error == ErrorCode.CHILD_IIN_MISSING
        return Reply(NAME, "child_iin_missing" if missing else "child_iin_invalid")
    child_iin = parsed.args["child_iin"]
    if not persons.is_valid(conn, child_iin):
        return Reply(NAME, "child_iin_invalid")
    entry = kindergarten.entry_by_child(conn, child_iin)
    if entry is None:
        return Reply(NAME, "no_data")
    return Reply(NAME, "found", {"child_iin": mask_digits(child_iin), "position": entry.position,
                                 "applied_on": entry.applied_on})
