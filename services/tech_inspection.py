"""Vehicle technical inspection (1414, `8`, `Техосмотр`): the validity dates of a plate."""

from __future__ import annotations

import datetime as dt

import psycopg

from parsers import Command
from replies.masking import mask_plate
from replies.reply import Reply
from services.handler import Request
from services.sender import checked_sender
from services.stores import vehicles

NAME = "tech_inspection"
# Kazakhstan keeps one time zone, UTC+5, since 2024.
KAZAKHSTAN = dt.timezone(dt.timedelta(hours=5))


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """Sender in MBG, sender's status, then the plate (missing or malformed: no data)."""
    sender = checked_sender(conn, NAME, request.sender)
    if isinstance(sender, Reply):
        return sender
    if not isinstance(request.parsed, Command):
        return Reply(NAME, "no_data")
    inspection = vehicles.inspection_by_plate(conn, request.parsed.args["plate"])
    if inspection is None:
        return Reply(NAME, "no_data")
    today = request.received_at.astimezone(KAZAKHSTAN).date()
    outcome = "valid" if today <= inspection.valid_to else "expired"
    return Reply(NAME, outcome, {"plate": mask_plate(inspection.plate),
                                 "valid_from": inspection.valid_from,
                                 "valid_to": inspection.valid_to})
