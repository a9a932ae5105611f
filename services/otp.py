"""One-time codes (seeds 002, 004): prove possession of a number before it is trusted.

A code is 6 digits, lives 10 minutes, works once, and dies after 5 wrong tries or
when another code is sent to the same phone. It is stored as an HMAC under the
server's key (6 digits would fall to a plain hash at once) and compared in
constant time. `link_number` links the phone to the IIN in MBG on success;
`document_access` is only for numbers already registered in MBG.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import psycopg

from parsers.iin import is_valid_iin
from services.stores import mbg
from services.stores import otp as store

TTL = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
PURPOSES = ("link_number", "document_access")

Refusal = Literal["iin_invalid", "not_in_mbg", "unknown_purpose"]
Reason = Literal["no_code", "expired", "invalid_code", "too_many_attempts"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A code made and recorded; `code` exists only to be put in the SMS."""

    id: int
    code: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to a verification."""

    ok: bool
    reason: Reason | None = None
    purpose: str | None = None


def _digest(key: bytes, phone: str, code: str) -> str:
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def issue(conn: psycopg.Connection, *, key: bytes, client: str, phone: str, purpose: str,
          iin: str | None, now: dt.datetime) -> Issued | Refusal:
    """A new code for `phone` (superseding any live one), or why none may be sent."""
    if purpose not in PURPOSES:
        return "unknown_purpose"
    if purpose == "link_number" and not (iin and is_valid_iin(iin)):
        return "iin_invalid"
    if purpose == "document_access" and mbg.iin_by_phone(conn, phone) is None:
        return "not_in_mbg"
    code = f"{secrets.randbelow(10**6):06d}"
    code_id = store.replace(conn, client=client, phone=phone, purpose=purpose, iin=iin,
                            code_hash=_digest(key, phone, code), now=now, expires_at=now + TTL)
    return Issued(code_id, code, now + TTL)


def verify(conn: psycopg.Connection, *, key: bytes, client: str, phone: str, code: str,
           now: dt.datetime) -> Verdict:
    """Check `code` against the live code of `phone`; on success it is used up."""
    live = store.live(conn, phone)
    if live is None or live.client != client:
        return Verdict(False, "no_code")
    if now >= live.expires_at:
        store.set_state(conn, live.id, "expired", live.attempts)
        return Verdict(False, "expired")
    if not hmac.compare_digest(_digest(key, phone, code), live.code_hash):
        attempts = live.attempts + 1
        locked = attempts >= MAX_ATTEMPTS
        store.set_state(conn, live.id, "locked" if locked else "active", attempts)
        return Verdict(False, "too_many_attempts" if locked else "invalid_code")
    store.set_state(conn, live.id, "used", live.attempts)
    if live.purpose == "link_number" and live.iin:
        mbg.link(conn, phone, live.iin)
    return Verdict(True, purpose=live.purpose)
