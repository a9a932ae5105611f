"""Vehicle technical inspection (1414, `8`, `Техосмотр`): the validity dates of a plate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import psycopg

from parsers import Command
from replies.masking import mask_plate
from replies.reply import Reply
from services.handler import Request
from services.sender import checked_senders, passed
from services.stores import vehicles

NAME = "tech_inspection"
# Kazakhstan keeps one time zone, UTC+5, since 2024.
KAZAKHSTAN = dt.timezone(dt.timedelta(hours=5))


def handle_many(conn: psycopg.Connection, requests: Sequence[Request]) -> list[Reply]:
    """Sender in MBG, sender's status, then the plate (missing or malformed: no data); the
    look-ups of every request at once."""
    senders = checked_senders(conn, NAME, [r.sender for r in requests])
    found = vehicles.inspections_by_plate(
        conn, [command.args["plate"] for command in passed(requests, senders)])
    return [_reply(r, senders[r.sender], found) for r in requests]


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """One request: as `handle_many`."""
    return handle_many(conn, [request])[0]


def _reply(request: Request, sender: str | Reply,
           found: dict[str, vehicles.Inspection]) -> Reply:
    if isinstance(sender, Reply):
        return sender
    if not isinstance(request.parsed, Command):
        return Reply(NAME, "no_data")
    inspection = found.get(request.parsed.args["plate"])
    if inspection is None:
        return Reply(NAME, "no_data")
    today = request.received_at.astimezone(KAZAKHSTAN).date()
    outcome = "valid" if today <= inspection.valid_to else "expired"
    return Reply(NAME, outcome, {"plate": mask_plate(inspection.plate),
                                 "valid_from": inspection.valid_from,
                                 "valid_to": inspection.valid_to})
