"""One-time codes (seeds 002, 004): prove possession of a number before it is trusted.

A code is 6 digits, lives 10 minutes, works once, and dies after 5 wrong tries or
when another code is sent to the same phone. It is stored as an HMAC under the
server's key (6 digits would fall to a plain hash at once) and compared in
constant time. `link_number` links the phone to the IIN in MBG on success (only
for clients that authenticated the IIN's holder; every change is audited);
`document_access` is only for numbers already registered in MBG, and a number
outside it gets a code that is recorded but never sent.
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
from replies.masking import mask_digits
from services.stores import mbg
from services.stores import otp as store

TTL = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
# Failed checks of one phone are counted over this window, whichever codes they were on.
FAILURE_WINDOW = dt.timedelta(hours=24)
PURPOSES = ("link_number", "document_access")

Refusal = Literal["iin_invalid", "unknown_purpose"]
Reason = Literal["no_code", "expired", "invalid_code", "too_many_attempts", "locked"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A code made and recorded; `code` exists only to be put in the SMS, unless suppressed."""

    id: int
    code: str
    expires_at: dt.datetime
    suppressed: bool = False  # recorded like any code, but nothing may be sent


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to a verification; `replaced`: numbers a link took the IIN from."""

    ok: bool
    reason: Reason | None = None
    purpose: str | None = None
    replaced: tuple[str, ...] = ()


def _digest(key: bytes, phone: str, code: str) -> str:
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def refusal(purpose: str, iin: str | None) -> Refusal | None:
    """Why a code request is malformed, or None: checked before any limit is counted."""
    if purpose not in PURPOSES:
        return "unknown_purpose"
    if purpose == "link_number" and not (iin and is_valid_iin(iin)):
        return "iin_invalid"
    return None


def issue(conn: psycopg.Connection, *, key: bytes, client: str, phone: str, purpose: str,
          iin: str | None, now: dt.datetime) -> Issued | Refusal:
    """A new code for `phone` (superseding any live one), or why none may be made.

    A document_access code for a number outside MBG is recorded and answered like any
    other, but suppressed: whoever asks must not learn who is in the base.
    """
    refused = refusal(purpose, iin)
    if refused is not None:
        return refused
    suppressed = purpose == "document_access" and mbg.iin_by_phone(conn, phone) is None
    code = f"{secrets.randbelow(10**6):06d}"
    # A suppressed code keeps a random value no HMAC of any code can equal: it behaves as a
    # live code nobody knows, so wrong guesses are answered (and counted) as for a real one.
    code_hash = secrets.token_hex(32) if suppressed else _digest(key, phone, code)
    code_id = store.replace(conn, client=client, phone=phone, purpose=purpose, iin=iin,
                            code_hash=code_hash, now=now, expires_at=now + TTL,
                            suppressed=suppressed)
    return Issued(code_id, code, now + TTL, suppressed)


def verify(conn: psycopg.Connection, *, key: bytes, audit_key: bytes, client: str, phone: str,
           code: str, now: dt.datetime, max_failures: int) -> Verdict:
    """Check `code` against the live code of `phone`; on success it is used up.

    Past `max_failures` failed checks of the phone in 24 hours, every check fails, the
    right code too, until they age out (NIST SP 800-63B, 5.2.2): a code's own five tries
    would otherwise start afresh with every code sent.
    """
    live = store.live(conn, phone)  # locked: checks of one phone take turns from here
    if store.failures(conn, phone, now - FAILURE_WINDOW) >= max_failures:
        return Verdict(False, "locked")
    if live is None or live.client != client:
        return Verdict(False, "no_code")
    if now >= live.expires_at:
        store.set_state(conn, live.id, "expired", live.attempts)
        return Verdict(False, "expired")
    if not hmac.compare_digest(_digest(key, phone, code), live.code_hash):
        store.record_failure(conn, phone, now)
        attempts = live.attempts + 1
        locked = attempts >= MAX_ATTEMPTS
        store.set_state(conn, live.id, "locked" if locked else "active", attempts)
        return Verdict(False, "too_many_attempts" if locked else "invalid_code")
    store.set_state(conn, live.id, "used", live.attempts)
    replaced: tuple[str, ...] = ()
    if live.purpose == "link_number" and live.iin:
        replaced = _link(conn, audit_key, client, phone, live.iin, now)
    return Verdict(True, purpose=live.purpose, replaced=replaced)


def _link(conn: psycopg.Connection, audit_key: bytes, client: str, phone: str, iin: str,
          now: dt.datetime) -> tuple[str, ...]:
    """Link `phone` to `iin` and audit what changed; the IIN's previous numbers."""
    removed = mbg.link(conn, phone, iin)
    replaced = tuple(p for p, owner in removed if owner == iin and p != phone)
    relinked = (phone, iin) in removed

    def change(action: Literal["link", "unlink"], whose: str, old: str | None,
               new: str | None) -> mbg.Change:
        return mbg.Change(now, client, action, mask_digits(whose), _keyed(audit_key, whose),
                          *_masked(audit_key, old), *_masked(audit_key, new))

    changes = [change("link", iin, old, phone)
               for old in replaced or ((phone if relinked else None),)]
    # The number's previous holder loses it: they proved nothing, the new holder did.
    changes += [change("unlink", owner, p, None) for p, owner in removed if owner != iin]
    mbg.audit(conn, changes)
    return replaced


def _keyed(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _masked(key: bytes, phone: str | None) -> tuple[str | None, str | None]:
    if phone is None:
        return None, None
    return mask_digits(phone), _keyed(key, phone)
