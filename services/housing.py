"""Housing queue (1414, `4`): the queue number of a person, or of the sender themself."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from parsers import Command
from replies.masking import mask_digits
from replies.reply import Reply
from services.handler import Request
from services.sender import checked_senders
from services.stores import housing

NAME = "housing_queue"


def handle_many(conn: psycopg.Connection, requests: Sequence[Request]) -> list[Reply]:
    """Sender in MBG, sender's status, then the IIN (the sender's own when none is given);
    the look-ups of every request at once."""
    senders = checked_senders(conn, NAME, [r.sender for r in requests])
    asked = [_iin(r, senders[r.sender]) for r in requests]
    found = housing.entries_by_iin(conn, [iin for iin in asked if iin])
    return [_reply(senders[r.sender], iin, found) for r, iin in zip(requests, asked, strict=True)]


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """One request: as `handle_many`."""
    return handle_many(conn, [request])[0]


def _iin(request: Request, sender: str | Reply) -> str | None:
    """The IIN asked about, once the sender passed its checks and the text parsed."""
    if isinstance(sender, Reply) or not isinstance(request.parsed, Command):
        return None
    return request.parsed.args.get("iin") or sender


def _reply(sender: str | Reply, iin: str | None,
           found: dict[str, housing.QueueEntry]) -> Reply:
    if isinstance(sender, Reply):
        return sender
    entry = found.get(iin) if iin else None
    if iin is None or entry is None:
        return Reply(NAME, "no_data")
    return Reply(NAME, "found", {"iin": mask_digits(iin), "position": entry.position,
                                 "registered_on": entry.registered_on})
