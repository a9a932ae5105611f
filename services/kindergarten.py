"""Kindergarten queue (1414, `5`, `Очередь в детсад`): a child's place in the queue."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from parsers import Command, ErrorCode
from replies.masking import mask_digits
from replies.reply import Reply
from services.handler import Request
from services.sender import checked_senders, passed
from services.stores import kindergarten, persons

NAME = "kindergarten_queue"


def handle_many(conn: psycopg.Connection, requests: Sequence[Request]) -> list[Reply]:
    """Sender in MBG, sender's status, the child's IIN given, valid, then in the queue; the
    look-ups of every request at once."""
    senders = checked_senders(conn, NAME, [r.sender for r in requests])
    children = [command.args["child_iin"] for command in passed(requests, senders)]
    valid = persons.valid_iins(conn, children)
    found = kindergarten.entries_by_child(conn, [iin for iin in children if iin in valid])
    return [_reply(r, senders[r.sender], valid, found) for r in requests]


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """One request: as `handle_many`."""
    return handle_many(conn, [request])[0]


def _reply(request: Request, sender: str | Reply, valid: set[str],
           found: dict[str, kindergarten.QueueEntry]) -> Reply:
    if isinstance(sender, Reply):
        return sender
    parsed = request.parsed
    if not isinstance(parsed, Command):
        missing = parsed.error == ErrorCode.CHILD_IIN_MISSING
        return Reply(NAME, "child_iin_missing" if missing else "child_iin_invalid")
    child_iin = parsed.args["child_iin"]
    if child_iin not in valid:
        return Reply(NAME, "child_iin_invalid")
    entry = found.get(child_iin)
    if entry is None:
        return Reply(NAME, "no_data")
    return Reply(NAME, "found", {"child_iin": mask_digits(child_iin), "position": entry.position,
                                 "applied_on": entry.applied_on})
