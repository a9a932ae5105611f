"""The load generator's runs against a running gateway, and what the bench samples around them.

A phase runs `python -m bench.loadgen` in a process of its own for warm-up + window
(+ tail) seconds; the queue depths (Redis lists) are sampled throughout, the CPU is
taken at both ends of the window and, when asked, Celery's task events are captured
as Flower would. Each phase's messages carry its tag as their `smsc` link, so its
figures come from the rows PostgreSQL recorded.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.cpu import cpu_between
from bench.gateway import System, wait
from workers.app import create_app
from workers.messages import reports
from workers.queues import all_queues

WINDOW = 1024  # messages in flight in the closed loop
# The load generator's keep-alive connections, each with one request at a time, as a bridge
# holds them: Kannel's smsbox keeps many get-url requests open at once (as many as its
# `max-pending-requests` lets it). The ingest gathers the requests waiting at once into one batch, so the
# connections bound every batch after it: with 16, dispatch batches stayed at 16 messages
# and each message paid a third of a Celery hop's cost at each step.
CONNECTIONS = 128


class QueueSampler(threading.Thread):
    """Samples the depth of every queue (and the tasks workers hold unacknowledged)."""

    def __init__(self, system: System, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.client = system.redis()
        self.queues = all_queues(system.settings)
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                pipe = self.client.pipeline()
                for queue in self.queues:
                    pipe.llen(queue)
                pipe.hlen("unacked")
                depths = pipe.execute()
            except redis.RedisError:
                continue
            self.samples.append((time.time(), dict(zip([*self.queues, "unacked"], depths))))

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)

    def mean(self, start: float, end: float) -> dict[str, float]:
        within = [d for t, d in self.samples if start <= t <= end]
        if not within:
            return {}
        return {k: round(sum(d[k] for d in within) / len(within), 1) for k in within[0]}


class EventTap(threading.Thread):
    """Celery's task events as published on Redis (what Flower reads), kept raw for later."""

    def __init__(self, system: System) -> None:
        super().__init__(daemon=True)
        self.pubsub = system.redis().pubsub(ignore_subscribe_messages=True)
        # kombu publishes Celery's events to "/<db>.celeryev/<routing key>": this db's only.
        database = redis.connection.parse_url(system.redis_url).get("db", 0)
        self.pubsub.psubscribe(f"/{database}.celeryev/task.*")
        self.raw: list[bytes] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                self.raw.append(message["data"])

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
        self.pubsub.close()

    def events(self) -> Iterator[dict[str, Any]]:
        for raw in self.raw:
            try:
                envelope = json.loads(raw)
                body = envelope["body"]
                if envelope.get("properties", {}).get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                decoded = json.loads(body)
            except (ValueError, KeyError, TypeError):
                continue
            yield from decoded if isinstance(decoded, list) else [decoded]


@dataclass
class PhaseRun:
    """One load generator run and what the bench saw around it."""

    name: str
    tag: str
    mode: str
    rate: float | None
    start: float
    warmup: float
    window: float
    loadgen: dict[str, Any]
    cpu: dict[str, Any] | None = None
    queues: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def window_start(self) -> float:
        return self.start + self.warmup

    @property
    def window_end(self) -> float:
        return self.start + self.warmup + self.window


@dataclass
class Message:
    """One inbound message of a phase, as PostgreSQL recorded it."""

    id: int
    received: float
    created: float | None
    claimed: float | None
    sent: float | None
    replies: int  # outbound rows (parts) sent
    parts: int


def quantile(values: list[float], q: float) -> float | None:
    """The `q` quantile of `values` (the nearest rank), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def stats(values: list[float], digits: int = 4) -> dict[str, Any]:
    """Count, mean, p50, p95, p99 and max of `values`, rounded to `digits`."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(sum(values) / len(values), digits),
            **{f"p{int(q * 100)}": round(quantile(values, q), digits)
               for q in (0.5, 0.95, 0.99)}, "max": round(max(values), digits)}


class Bench:
    """The end-to-end phases against a running `System`."""

    def __init__(self, system: System, *, persons: int, log: Any = print) -> None:
        self.system = system
        self.persons = persons
        self.log = log
        self.tag = f"bench-{uuid.uuid4().hex[:8]}"
        self.specs = system.folder / "loadgen"
        self.specs.mkdir(exist_ok=True)
        self.phases: list[PhaseRun] = []
        self.celery = create_app(system.settings)

    def phase(self, name: str, mode: str, *, warmup: float, window: float,
              rate: float | None = None, tail: float = 0.0, events: bool = False) -> PhaseRun:
        """Run the load generator for warmup + window (+ tail) seconds; CPU over the window."""
        tag = f"{self.tag}-{name}"
        spec = {"phase": name, "tag": tag, "mode": mode, "rate": rate, "window": WINDOW,
                "seconds": warmup + window + tail, "start_at": None,
                "url": self.system.settings.ingest_url, "token": self.system.settings.secret(),
                "outbox": str(self.system.outbox), "connections": CONNECTIONS,
                "persons": self.persons, "seed": 1414 + len(self.phases),
                "out": str(self.specs / f"{name}.out.json")}
        path = self.specs / f"{name}.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(spec))
        sampler = QueueSampler(self.system)
        tap = EventTap(self.system) if events else None
        if tap:  # as Flower does: the workers send their task events while it watches
            self.celery.control.enable_events()
        with (self.specs / f"{name}.log").open("wb") as errors:
            process = subprocess.Popen([sys.executable, "-m", "bench.loadgen", str(path)],
                                       stdout=subprocess.PIPE, stderr=errors)
        sampler.start()
        try:
            line = process.stdout.readline()  # once its traffic is built: when it starts
            if not line:
                raise RuntimeError(f"bench: the load generator did not start; see "
                                   f"{self.specs / (name + '.log')}")
            start = float(json.loads(line)["start"])
            _sleep_until(start + warmup)
            before = self.system.snapshot(process.pid)
            if tap:
                tap.start()
            _sleep_until(start + warmup + window)
            after = self.system.snapshot(process.pid)
            if tap:
                tap.stop()
                self.celery.control.disable_events()
            if process.wait(timeout=warmup + window + tail + 120) != 0:
                raise RuntimeError(f"bench: the load generator failed; see "
                                   f"{self.specs / (name + '.log')}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
            sampler.stop()
        result = json.loads(Path(spec["out"]).read_text())
        run = PhaseRun(name, tag, mode, rate, start, warmup, window, result,
                       cpu_between(before, after), sampler.mean(start + warmup,
                                                                 start + warmup + window),
                       list(tap.events()) if tap else [])
        self.phases.append(run)
        return run

    def messages(self, run: PhaseRun) -> list[Message]:
        with self.system.connect() as conn:
            return [Message(*row) for row in reports.timings(conn, run.tag)]

    def drain(self, timeout_s: float) -> float:
        """Wait until every message of the run has its reply (sent or failed); seconds waited."""
        started = time.monotonic()
        with self.system.connect() as conn:
            def done() -> bool:
                return reports.unanswered(conn, f"{self.tag}-%") == 0
            try:
                wait(done, timeout_s, "the replies", interval=0.5)
            except RuntimeError:
                self.log(f"  (not drained after {timeout_s:.0f} s)")
        return time.monotonic() - started

    # ---------------------------------------------------------------- figures of a phase

    def completion_rate(self, run: PhaseRun, messages: list[Message]) -> float:
        """Replies (all their parts) sent per second within the steady window."""
        done = sum(1 for m in messages if m.sent is not None and m.replies >= m.parts
                   and run.window_start <= m.sent < run.window_end)
        return done / run.window

    def backlog(self, messages: list[Message], at: float) -> int:
        """Messages received by `at` and not yet sent at `at`."""
        return sum(1 for m in messages if m.received <= at and (m.sent is None or m.sent > at))

    def offered_rate(self, run: PhaseRun) -> float:
        """Requests the gateway accepted per second within the steady window."""
        accepted = sum(1 for r in run.loadgen["records"]
                       if r[3] == 202 and run.window_start <= r[2] < run.window_end)
        return accepted / run.window


def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)
