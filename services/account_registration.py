"""Da Nang e-citizen accounts (8188): registration by SMS, and the 3-day password rotation.

User names are `given.family.NNNN` in lower-case ASCII (`an.nguyen.4821`): easy to
type, unique with the 4 random digits, and not an identity number, so they can
appear in URLs and logs. Passwords are generated (services/passwords.py), kept
only as argon2id hashes, and appear in plain text only in the SMS to the citizen.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import psycopg

from parsers import Command
from replies.reply import Reply
from services import passwords
from services.handler import Request
from services.stores import accounts

NAME = "account_registration"
ROTATE_AFTER = dt.timedelta(days=3)
_NAME_PART = 10  # keeps a user name, and so the reply, within one SMS


@dataclass(frozen=True, slots=True)
class Notice:
    """An SMS a service sends on its own, with the key that makes it once only."""

    recipient: str
    reply: Reply
    key: str


def username(full_name: str) -> str:
    """`Nguyen Van An` -> `an.nguyen.4821` (family name first, as Vietnamese names are)."""
    words = [w for w in "".join(c for c in full_name.lower() if c.isascii()).split() if w.isalpha()]
    parts = [words[-1], words[0]] if len(words) > 1 else words[:1] or ["user"]
    return ".".join(p[:_NAME_PART] for p in parts) + f".{secrets.randbelow(10_000):04d}"


def handle(conn: psycopg.Connection, request: Request) -> Reply:
    """One account per phone and per CMND; the second of two racing requests gets the refusal."""
    parsed = request.parsed
    if not isinstance(parsed, Command):
        return Reply(NAME, "syntax_error")
    args = parsed.args
    refusal = accounts.taken(conn, request.sender, args["id_number"])
    if refusal is not None:
        return _refused(refusal)
    password = passwords.generate()
    password_hash = passwords.hash_password(password)
    for _ in range(5):  # a user name taken by chance gets other digits
        name = username(args["full_name"])
        try:
            with conn.transaction():
                accounts.create(conn, username=name, phone=request.sender,
                                id_number=args["id_number"], full_name=args["full_name"],
                                birth_date=dt.date.fromisoformat(args["birth_date"]),
                                password_hash=password_hash, now=request.received_at)
        except psycopg.errors.UniqueViolation as error:
            if error.diag.constraint_name != accounts.USERNAME_TAKEN:
                return _refused(error.diag.constraint_name or accounts.ID_TAKEN)
            continue
        return Reply(NAME, "registered", {"username": name, "password": password}, sealed=True)
    raise RuntimeError("no free user name after 5 tries")


def _refused(constraint: str) -> Reply:
    return Reply(NAME, "phone_registered" if constraint == accounts.PHONE_TAKEN else "id_registered")


def rotate_due(conn: psycopg.Connection, now: dt.datetime, limit: int = 500) -> list[Notice]:
    """Reissue every password left unchanged for 3 days; one reminder per account and rotation.

    Safe to run twice at once: the due accounts are locked and skipped by the other run,
    and a reissued password is not due again for another 3 days.
    """
    notices = []
    for account in accounts.due(conn, now - ROTATE_AFTER, limit):
        password = passwords.generate()
        rotation = accounts.reissue(conn, account.id, passwords.hash_password(password), now)
        reply = Reply(NAME, "rotated", {"username": account.username, "password": password},
                      sealed=True)
        notices.append(Notice(account.phone, reply, f"rotation:{account.id}:{rotation}"))
    return notices
