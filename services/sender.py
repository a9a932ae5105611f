"""The checks every 1414 service makes of its sender first, in the seed tables' order."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from parsers import Command
from replies.reply import Reply
from services.handler import Request
from services.stores import mbg, persons


def checked_senders(conn: psycopg.Connection, service: str,
                    phones: Sequence[str]) -> dict[str, str | Reply]:
    """By phone: the sender's IIN when the phone is in MBG and the person is valid; else the
    refusal. Two queries, however many phones."""
    iins = mbg.iins_by_phone(conn, phones)
    valid = persons.valid_iins(conn, set(iins.values()))
    return {phone: Reply(service, "not_in_mbg") if phone not in iins
            else iins[phone] if iins[phone] in valid else Reply(service, "status_invalid")
            for phone in phones}


def passed(requests: Sequence[Request], senders: dict[str, str | Reply]) -> list[Command]:
    """The parsed commands of the requests whose sender passed the checks: what a service
    looks up next."""
    return [r.parsed for r in requests
            if isinstance(r.parsed, Command) and not isinstance(senders[r.sender], Reply)]
