"""Load for the fault suite: post messages as a bridge does, and count what came of them."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.loadgen import Traffic
from tests.support.gateway import Gateway


@dataclass
class Posted:
    """What the ingest answered per external id: an inbound id, or None for a refusal (503)."""

    accepted: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _body(external_id: str, n: int) -> dict:
    return {"from": f"+7701{n % 10_000_000:07d}", "to": "1414", "text": "hello", "id": external_id}


def post(gw: Gateway, external_ids: list[str], posted: Posted, *, rate: float | None = None,
         workers: int = 16, bodies: dict[str, dict] | None = None) -> None:
    """Post each message once, at `rate` per second (or as fast as `workers` threads go);
    its body from `bodies` by external id, else a "hello" that names no service."""
    url = f"{gw.settings.ingest_url}/v1/messages/inbound"
    headers = {"X-Bridge-Token": gw.settings.secret()}
    start = time.monotonic()
    # One client for every thread: a client per request costs ~20 ms of CPU, and at a few
    # hundred messages a second this process would starve the gateway it tests.
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    client = httpx.Client(headers=headers, timeout=60, limits=limits)

    def one(item: tuple[int, str]) -> None:
        n, external_id = item
        if rate:
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
        try:
            body = bodies[external_id] if bodies else _body(external_id, n)
            response = client.post(url, json=body)
            ok = response.status_code == 202
        except httpx.HTTPError:
            ok = False
        with posted.lock:
            if ok:
                posted.accepted[external_id] = response.json()["id"]
            else:
                posted.refused.append(external_id)

    with client, ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(external_ids)))


def retry_refused(gw: Gateway, posted: Posted, all_ids: list[str], *, rounds: int = 20,
                  rate: float | None = None, bodies: dict[str, dict] | None = None) -> None:
    """The bridge retries what was refused, a second apart, until it is accepted."""
    for _ in range(rounds):
        if not posted.refused:
            return
        todo, posted.refused = posted.refused, []
        post(gw, todo, posted, rate=rate, bodies=bodies)
        if posted.refused:
            time.sleep(1)


def signal_worker(gw: Gateway, name: str, sig: signal.Signals) -> None:
    """Send `sig` to a worker and its pool processes."""
    main = gw.processes[name]
    proc = Path(f"/proc/{main.pid}/task/{main.pid}/children")
    children = [int(p) for p in proc.read_text().split()] if proc.exists() else []
    for pid in [main.pid, *children]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def answered(conn: psycopg.Connection, external_id: str) -> bool:
    """True once the message of `external_id` has a reply sent."""
    return conn.execute("SELECT 1 FROM inbound i JOIN outbound o ON o.inbound_id = i.id "
                        "WHERE i.external_id = %s AND o.state = 'sent'",
                        (external_id,)).fetchone() is not None


def ids(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{i}" for i in range(n)]


@dataclass(frozen=True)
class Outcome:
    """What became of a load, from the message store and the outbox."""

    inbound: int
    answered: int
    sms_sent: int
    duplicates_sent: int
    flagged: int
    late: int

    def show(self, name: str, **extra: object) -> None:
        print(f"\n[fault] {name}: " + json.dumps({**self.__dict__, **extra}))


def outcome(gw: Gateway, conn: psycopg.Connection) -> Outcome:
    sent = Counter(s["outbound_id"] for s in gw.sent())
    inbound, answered = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM outbound o "
        "WHERE o.inbound_id = i.id AND o.state = 'sent')) FROM inbound i").fetchone()
    flagged, late = conn.execute(
        "SELECT count(*) FILTER (WHERE possible_duplicate), "
        "count(*) FILTER (WHERE sent_at > deadline) FROM outbound").fetchone()
    return Outcome(inbound, answered, len(sent), sum(n - 1 for n in sent.values()), flagged, late)


def all_answered(gw: Gateway, conn: psycopg.Connection, expected: int) -> bool:
    result = outcome(gw, conn)
    return result.answered >= expected and result.sms_sent >= expected


def realistic(external_ids: list[str], seed: int = 11) -> dict[str, dict]:
    """Bodies of the benchmark's traffic (every service, Latin and Cyrillic, 10% malformed)
    for the demo dataset, by external id."""
    traffic = Traffic(seed=seed)
    bodies = {}
    for external_id in external_ids:
        sender, shortcode, text, _ = traffic.next()
        bodies[external_id] = {"from": sender, "to": shortcode, "text": text, "id": external_id}
    return bodies
