"""Retention: personal data kept no longer than GOVSMS_RETENTION_DAYS (0: for ever).

Past the limit, oldest first, in batches of BATCH rows, each its own short transaction
that waits for no lock longer than LOCK_TIMEOUT (the pipeline keeps answering meanwhile):

    inbound, outbound   text emptied (sealed ones too), the phone number replaced by its
                        masked form and a keyed digest, `purged_at` set  (messages/purge.py)
    one-time codes      deleted, with the failed checks              (services/stores/otp.py)
    replay items        deleted; their runs keep their counts        (replay/runs.py)
    callbacks' events   deleted                                       (messages/callbacks.py)
    Redis               the SMPP transport's notes on purged parts

Kept: times, short code, service, outcome, states, parts, attempts, tariffs, receipts'
states, dead letters' reasons (which never hold an argument), suppressions: so fees,
metrics and SLA figures over old periods do not change, and counts per sender still work
through the digest. What is older but still in flight is left for the next run.
Beat runs it every night (`govsms.purge`); `govsms purge --older-than 30d` on demand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import redis

from replies.masking import mask_digits
from replies.sealing import derive
from services.stores import otp
from workers.messages import callbacks
from workers.messages import purge as store
from workers.replay import runs

log = logging.getLogger(__name__)

BATCH = 1000
LOCK_TIMEOUT = "2s"
_DIGITS = re.compile(r"\d(?=\d{4})")
_UNANSWERED_KEYS = "govsms:smpp:*:unanswered:*"


@dataclass
class Purged:
    """What a purge did (or, dry, would do)."""

    inbound: int = 0
    outbound: int = 0
    codes: int = 0
    replay_items: int = 0
    callbacks: int = 0
    redis_keys: int = 0
    in_flight: int = 0  # older than the limit, not finished yet: left for the next run
    more: bool = False  # the budget ran out first: more is due


def digest_key(secret: str) -> bytes:
    """The key of the phones' digests, derived from the server's own."""
    return derive(secret, "govsms/retention")


def masker(key: bytes) -> store.Masked:
    """A phone number -> (its masked form, its keyed digest)."""

    def masked(phone: str) -> tuple[str, str]:
        shown = mask_digits(phone)
        if shown == phone:  # too short for a phone number's mask: hide all but the end
            shown = _DIGITS.sub("*", phone)
        return shown, hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()[:32]

    return masked


def due(conn: psycopg.Connection, before: dt.datetime) -> Purged:
    """What a purge before `before` would touch (codes and replay items not counted)."""
    inbound, outbound, in_flight = store.due(conn, before)
    return Purged(inbound=inbound, outbound=outbound, in_flight=in_flight)


def purge(conn: psycopg.Connection, key: bytes, before: dt.datetime, *,
          client: redis.Redis | None = None, batch: int = BATCH,
          budget_s: float | None = None,
          progress: Callable[[int], None] | None = None) -> Purged:
    """Purge what is older than `before` (module docstring); `progress` gets each batch's
    row count as it is committed. With `budget_s`, no batch starts after that long (`more`
    then says whether something is left)."""
    out = Purged()
    until = None if budget_s is None else time.monotonic() + budget_s
    masked = masker(key)
    purged_parts: set[int] = set()

    def outbound(c: psycopg.Connection) -> int:
        ids = store.purge_outbound(c, before, batch, masked)
        purged_parts.update(ids)
        return len(ids)

    steps: list[tuple[str, Callable[[psycopg.Connection], int]]] = [
        ("inbound", lambda c: store.purge_inbound(c, before, batch, masked)),
        ("outbound", outbound),
        ("codes", lambda c: otp.purge(c, before, batch)),
        ("replay_items", lambda c: runs.purge_items(c, before, batch)),
        ("callbacks", lambda c: callbacks.purge(c, before, batch)),
    ]
    for name, step in steps:
        while True:
            if until is not None and time.monotonic() > until:
                out.more = True
                break
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                done = step(conn)
            setattr(out, name, getattr(out, name) + done)
            if progress is not None and done:
                progress(done)
            if done < batch:
                break
    out.in_flight = store.due(conn, before)[2]
    if client is not None and purged_parts:
        out.redis_keys = _forget(client, purged_parts)
    log.info("purged before %s: %d inbound, %d outbound, %d codes and failed checks, "
             "%d replay items, %d callbacks, %d Redis keys; %d in flight left",
             before.isoformat(), out.inbound, out.outbound, out.codes, out.replay_items,
             out.callbacks, out.redis_keys, out.in_flight)
    return out


def _forget(client: redis.Redis, parts: set[int]) -> int:
    """Delete the SMPP transport's notes on these outbound parts; how many."""
    doomed = [key for key in client.scan_iter(match=_UNANSWERED_KEYS, count=1000)
              if int(key.rsplit(b":", 2)[-2]) in parts]
    return client.delete(*doomed) if doomed else 0
