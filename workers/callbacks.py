"""Signed callbacks: each final state of an API client's SMS, POSTed to its `callback_url`.

    outbound row sent/failed, receipt delivered/undeliverable/expired/...
        -> a `callbacks` row, by a trigger, in the same transaction (migration 0010)
        -> [callbacks queue] send_due(): leased, POSTed, done or due again with backoff

Each request carries a JSON event with a unique `id` (the client drops repeats: delivery is
at least once) and two headers, as Stripe's and GitHub's webhooks do:

    Govsms-Timestamp: 1765142400
    Govsms-Signature: v1=<hex HMAC-SHA256 under the client's secret of "<timestamp>.<body>">

A 2xx answer is delivered; anything else (a timeout, a refusal, a 500) is tried again after
a backoff that doubles to MAX_BACKOFF_S, for GIVE_UP_AFTER, then given up (recorded). A slow
client holds only the callbacks worker, never a reply; and a client that failed once in a
round is not tried again in it, so one that is down costs a round one timeout, not one per
event. No text and no number is in an event: ids, states and times only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import psycopg

from workers.messages import callbacks as store
from workers.settings import ApiClient

log = logging.getLogger(__name__)

TIMESTAMP_HEADER, SIGNATURE_HEADER = "Govsms-Timestamp", "Govsms-Signature"
TIMEOUT_S = 5.0
LEASE_S = 60.0
MAX_BACKOFF_S = 1800.0
GIVE_UP_AFTER = dt.timedelta(hours=24)
BATCH = 100


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Govsms-Signature` value of `body` sent at `timestamp` under `secret`."""
    signed = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str, now: float,
           tolerance_s: float = 300.0) -> bool:
    """What a client does with a callback: the signature matches and it is recent."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature(secret, int(timestamp), body), header)


def event(row: dict) -> dict:
    """The JSON event of a `callbacks` row."""
    code = row["service"] == "otp" and (row["dedupe_key"] or "").startswith("otp:")
    return {"id": str(row["event_id"]), "type": f"message.{row['event']}",
            "created_at": row["at"].isoformat(),
            "data": {("code_id" if code else "message_id"):
                     int(row["dedupe_key"][4:]) if code else row["first_id"],
                     "part": row["part"], "parts": row["parts"], "state": row["event"]}}


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones."""
    return min(2.0 ** attempts * 5, MAX_BACKOFF_S)


@dataclass
class Sent:
    """What one round did."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    more: bool = False


def send_due(conn: psycopg.Connection, clients: Mapping[str, ApiClient], http: httpx.Client,
             *, now: dt.datetime | None = None, budget_s: float | None = None) -> Sent:
    """POST the due events, a batch at a time, until none is due or `budget_s` is spent."""
    out = Sent()
    until = None if budget_s is None else time.monotonic() + budget_s
    while True:
        moment = now or dt.datetime.now(dt.UTC)
        with conn.transaction():
            rows = store.lease_due(conn, moment, BATCH, LEASE_S)
        finished: list[tuple[int, str, int, str | None]] = []
        again: list[tuple[int, dt.datetime, str]] = []
        later: list[tuple[int, dt.datetime]] = []  # not tried this round
        failing: set[str] = set()  # clients that failed this round: one try each is enough
        for row in rows:
            if until is not None and time.monotonic() > until:
                later.append((row["id"], moment))
                out.more = True
                continue
            if row["client"] in failing:
                later.append((row["id"], moment + dt.timedelta(seconds=backoff(0))))
                continue
            entry = clients.get(row["client"])
            if entry is None or entry.callback_url is None:
                finished.append((row["id"], "no_callback", 0, None))
                out.dropped += 1
                continue
            error = _post(http, entry, event(row))
            if error is None:
                finished.append((row["id"], "delivered", 1, None))
                out.delivered += 1
            elif moment - row["at"] > GIVE_UP_AFTER:
                finished.append((row["id"], "gave_up", 1, error))
                log.warning("callback %s to client %s given up: %s", row["event_id"],
                            row["client"], error)
            else:
                out.failed += 1
                failing.add(row["client"])
                again.append((row["id"], moment + dt.timedelta(
                    seconds=backoff(row["attempts"])), error))
        with conn.transaction():
            store.done(conn, moment, finished)
            store.again(conn, again)
            store.later(conn, later)
        if len(rows) < BATCH or out.more:
            return out


def _post(http: httpx.Client, entry: ApiClient, payload: dict) -> str | None:
    """POST one event; None when the client took it, else why not (never its answer's body)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    stamp = int(time.time())
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(stamp),
               SIGNATURE_HEADER: signature(entry.secret.get_secret_value(), stamp, body)}
    try:
        response = http.post(str(entry.callback_url), content=body, headers=headers,
                             timeout=TIMEOUT_S)
    except httpx.HTTPError as error:
        return type(error).__name__
    return None if response.is_success else f"HTTP {response.status_code}"
