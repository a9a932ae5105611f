"""`govsms bench` (what `make bench` runs): measured figures, printed and written to docs/.

Four parts:

- the parser alone on one core (`parsers/bench.py`);
- the broker's own ceiling (unpipelined LPUSH+RPOP on a private Redis);
- the pipeline's steps called in one process (no HTTP, no broker), batches of 1 and 50;
- the whole gateway end to end on this machine: private Redis and PostgreSQL in a
  temporary folder (or the configured ones, GOVSMS_REDIS_URL / GOVSMS_DATABASE_URL),
  the migrations, the demo dataset, and the processes `workers.run.processes()` lists
  (ingest, inbound, one worker per service, outbound, bulk...; not beat or flower) with
  the file transport, driven over HTTP by the load generator (workers/loadgen.py), a
  process of its own.

The end-to-end phases, each tagged by the `smsc` link of its messages so the
figures come from the rows PostgreSQL recorded:

1. `saturate`: closed loop, `WINDOW` messages in flight from post to reply, so the
   gateway runs flat out with a bounded backlog; the rate of replies over a steady
   window after a warm-up is the capacity estimate.
2. `sustain`: open loop (Poisson arrivals) at that rate; it holds when the replies
   keep pace (>= 95% of the rate the ingest accepted) and the backlog does not grow by
   more than a second of traffic over the window; else 10% lower, twice at most. The
   rate that held is `e2e_msgs_per_s`.
3. `half`: open loop at half that rate: received -> sent latency over a steady
   window, with the Celery task events captured to split it into stages.
4. `burst`: open loop at 3x that rate for 8 x `seconds` (40 s by default, not the 60 s
   of the issue, to keep `make bench` near 4 minutes), then drained: the share of
   replies sent within the SLA of receipt.

CPU comes from /proc/<pid>/stat of each process tree (PostgreSQL backends attributed
to the process at the other end of their socket), queue depths from Redis.

Performance is measured here, never asserted in a timed unit test.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import json
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from pydantic import SecretStr

from parsers.bench import measure as measure_parser
from workers import db, embedded, extracts
from workers import demo as demo_data
from workers.queues import all_queues
from workers.run import processes, start_server
from workers.settings import Settings
from workers.supervisor import Child, Supervisor

TARGETS = {"parser_msgs_per_s": ">= 50,000 on one core",
           "e2e_msgs_per_s": ">= 1,000 on 2 cores",
           "burst_sla_ok_ratio": "1.0 (every reply within the SLA)"}
WINDOW = 128  # messages in flight in the closed loop
CONNECTIONS = 16  # the load generator's keep-alive connections
BURST_FACTOR = 3.0
BURST_ISSUE_S = 60.0  # the burst length the issue asks for
CLK_TCK = os.sysconf("SC_CLK_TCK")
OTHER = "other processes"  # CPU outside the processes measured, interrupts and steal
KERNEL = "kernel interrupts (irq, softirq)"
STEAL = "stolen by the hypervisor"


# --------------------------------------------------------------------------- broker

def measure_broker(seconds: float = 2.0) -> float:
    """Unpipelined LPUSH+RPOP pairs per second on a private Redis, counted as two operations."""
    folder = Path(tempfile.mkdtemp(prefix="govsms-bench-"))
    spec = embedded.redis_spec(folder)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        embedded.wait_ready(spec, lambda: server.poll() is None)
        client = redis.Redis.from_url(spec.url)
        operations, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                client.lpush("bench", b"x" * 200)
                client.rpop("bench")
            operations += 200
        return operations / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def _versions() -> dict[str, str]:
    names = ("celery", "kombu", "redis", "psycopg", "fastapi", "uvicorn", "httpx")
    return {"python": platform.python_version(), **{n: metadata.version(n) for n in names}}


# --------------------------------------------------------------------------- CPU accounting

def _proc_table() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (parent pid, CPU seconds of itself and of its reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()
        ticks = sum(int(v) for v in rest[11:15])  # utime stime cutime cstime
        table[int(entry)] = (int(rest[1]), ticks / CLK_TCK)
    return table


def _own_cpu(pid: int) -> float:
    """CPU seconds of one process alone (threads included, children not)."""
    rest = Path(f"/proc/{pid}/stat").read_text()
    rest = rest[rest.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def _tree(table: dict[int, tuple[int, float]], root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def _machine_busy() -> tuple[float, float, float, float]:
    """(busy, total, interrupts, steal) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return ((total - idle) / CLK_TCK, total / CLK_TCK, (fields[5] + fields[6]) / CLK_TCK,
            fields[7] / CLK_TCK)


def _socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
        except OSError:
            continue
    return inodes


def _port_inodes() -> dict[int, int]:
    """Local TCP port -> socket inode, for every TCP socket of the machine."""
    found: dict[int, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            found[int(parts[1].rsplit(":", 1)[1], 16)] = int(parts[9])
    return found


@dataclass
class CpuSnapshot:
    """CPU seconds by process group, PostgreSQL backends by the process they serve."""

    at: float
    groups: dict[str, float]
    backends: dict[str, float]
    machine: tuple[float, float, float, float]


# --------------------------------------------------------------------------- the system

@dataclass
class System:
    """The running gateway and what the bench needs to know about it."""

    settings: Settings
    folder: Path
    supervisor: Supervisor
    redis_url: str
    database_url: str
    roots: dict[str, int] = field(default_factory=dict)  # process group -> root pid
    embedded_postgres: bool = False
    embedded_redis: bool = False

    @property
    def outbox(self) -> Path:
        return self.settings.outbox

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def snapshot(self, loadgen: int | None = None) -> CpuSnapshot:
        """CPU so far of each process group, and of each PostgreSQL backend by its client."""
        table = _proc_table()
        groups = {name: sum(table[p][1] for p in _tree(table, pid))
                  for name, pid in self.roots.items() if pid in table}
        groups["bench"] = _own_cpu(os.getpid())
        if loadgen and loadgen in table:
            groups["loadgen"] = table[loadgen][1]
        if not self.embedded_redis:
            try:
                cpu = self.redis().info("cpu")
                groups["redis"] = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
            except redis.RedisError:
                pass
        backends: dict[str, float] = defaultdict(float)
        try:
            with self.connect() as conn:
                rows = conn.execute(
                    "SELECT pid, client_port FROM pg_stat_activity WHERE datname = "
                    "current_database() AND pid <> pg_backend_pid()").fetchall()
        except psycopg.Error:
            rows = []
        owners: dict[int, str] = dict.fromkeys(_socket_inodes([os.getpid()]), "bench")
        for name, pid in self.roots.items():
            if name != "postgres":
                for inode in _socket_inodes(_tree(table, pid)):
                    owners[inode] = name
        ports = _port_inodes()
        for backend, port in rows:
            if backend in table:
                client = owners.get(ports.get(port or -1, -1), "other")
                backends[client] += _own_cpu(backend)
        if not self.embedded_postgres:
            groups["postgres"] = sum(backends.values())
        return CpuSnapshot(time.time(), groups, dict(backends), _machine_busy())


def _cpu_between(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, Any]:
    """Cores each process group used between two snapshots (1.0 = one core flat out)."""
    wall = b.at - a.at
    groups = {k: round((b.groups[k] - a.groups.get(k, 0.0)) / wall, 3)
              for k in b.groups if k in a.groups}
    backends = {k: round((v - a.backends.get(k, 0.0)) / wall, 3) for k, v in b.backends.items()}
    busy, total, interrupts, steal = ((y - x) / wall for x, y in zip(a.machine, b.machine))
    groups[KERNEL] = round(interrupts, 3)  # loopback TCP is mostly softirq
    if steal >= 0.005:
        groups[STEAL] = round(steal, 3)
    groups[OTHER] = round(
        max(busy - sum(groups.values()), 0.0), 3)
    return {"seconds": round(wall, 1), "cores": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
            "postgres_backends_by_client": dict(sorted(backends.items(), key=lambda kv: -kv[1])),
            "machine_busy_cores": round(busy, 3), "machine_cores": round(total, 2)}


def _wait(check: Any, timeout_s: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"bench: timed out after {timeout_s:.0f} s waiting for {what}")


_REGISTERED = """
INSERT INTO accounts.citizens (username, phone, id_number, full_name, birth_date,
                               password_issued_at, password_changed_at)
VALUES (%s, %s, %s, 'Bench Repeat', '1990-01-01', now(), now())
ON CONFLICT DO NOTHING
"""


def _seed(database_url: str, persons: int) -> dict[str, int]:
    """The demo dataset through the extract loader, and the accounts of the 8188 senders the
    load generator has ask again (they set their own password: no hash to make here)."""
    from services.phones import to_e164
    from workers.loadgen import REGISTERED_PHONES

    text = json.dumps(demo_data.dataset(persons=persons), default=str)
    with psycopg.connect(database_url) as conn:
        counts = extracts.load(conn, extracts.validate(text))
        for n, phone in enumerate(REGISTERED_PHONES):
            conn.execute(_REGISTERED, (f"bench.repeat.{n:04d}", to_e164(phone, "VN"),
                                       f"9{n:08d}"))
    return counts


@contextmanager
def gateway(*, redis_url: str | None = None, database_url: str | None = None,
            persons: int = 20_000, log: Any = print) -> Iterator[System]:
    """Servers (configured, else private), migrations, demo data and the gateway's processes."""
    env_settings = Settings()
    redis_url = redis_url or env_settings.redis_url
    database_url = database_url or env_settings.database_url
    folder = Path(tempfile.mkdtemp(prefix="govsms-bench-"))
    folder.chmod(0o755)  # PostgreSQL runs unprivileged when we are root, and must reach it
    logs = folder / "logs"
    logs.mkdir()
    supervisor = Supervisor()
    roots: dict[str, int] = {}
    try:
        started = time.monotonic()
        own_redis, own_postgres = redis_url is None, database_url is None
        if own_redis:
            spec = embedded.redis_spec(folder)
            roots["redis"] = start_server(supervisor, spec, logs).process.pid
            redis_url = spec.url
        if own_postgres:
            spec = embedded.postgres_spec(folder)
            roots["postgres"] = start_server(supervisor, spec, logs).process.pid
            database_url = spec.url
        assert redis_url and database_url
        db.migrate(database_url)
        counts = _seed(database_url, persons)
        log(f"  servers, migrations and demo data ({sum(counts.values()):,} rows) "
            f"in {time.monotonic() - started:.0f} s; logs in {logs}")
        settings = env_settings.model_copy(update={
            "redis_url": redis_url, "database_url": database_url, "data_dir": folder,
            "http_host": "127.0.0.1", "http_port": embedded.free_port(),
            "bridge_secret": SecretStr(secrets.token_urlsafe(32)),
            "secret_key": SecretStr(secrets.token_urlsafe(32)),
            "transport": f"file://{folder / 'outbox.jsonl'}", "smpp_receiver": None})
        env = {**os.environ, "GOVSMS_REDIS_URL": redis_url, "GOVSMS_DATABASE_URL": database_url,
               "GOVSMS_DATA_DIR": str(folder), "GOVSMS_HTTP_HOST": settings.http_host,
               "GOVSMS_HTTP_PORT": str(settings.http_port),
               "GOVSMS_BRIDGE_SECRET": settings.secret(), "GOVSMS_SECRET_KEY": settings.key(),
               "GOVSMS_TRANSPORT": settings.transport_url}
        env.pop("GOVSMS_SMPP_RECEIVER", None)
        started = time.monotonic()
        for name, argv in processes(settings).items():
            if name in ("beat", "flower", "smpp-ingest"):
                continue
            child = supervisor.start(Child(name, argv, logs / f"{name}.log", env))
            roots[name] = child.process.pid
        for child in supervisor.children:
            if child.name.startswith("worker-"):
                _wait(lambda c=child: _ready(c, logs), 90, f"{child.name} (see {logs})")
        _wait(lambda: _ingest_up(settings), 30, f"the ingest (see {logs})")
        log(f"  {len([n for n in roots if n.startswith(('ingest', 'worker'))])} gateway "
            f"processes ready in {time.monotonic() - started:.0f} s")
        yield System(settings, folder, supervisor, redis_url, database_url, roots,
                     embedded_postgres=own_postgres, embedded_redis=own_redis)
    finally:
        supervisor.stop()
        if not os.environ.get("GOVSMS_BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


def _ready(child: Child, logs: Path) -> bool:
    if not child.alive():
        raise RuntimeError(f"bench: {child.name} exited; see {logs / (child.name + '.log')}")
    return "ready." in (logs / f"{child.name}.log").read_text(errors="replace")


def _ingest_up(settings: Settings) -> bool:
    try:
        return httpx.get(f"{settings.ingest_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- samplers

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


# --------------------------------------------------------------------------- phases

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


_MESSAGES = """
SELECT i.id, extract(epoch FROM i.received_at)::float8,
       extract(epoch FROM min(o.created_at))::float8, extract(epoch FROM min(o.claimed_at))::float8,
       extract(epoch FROM max(o.sent_at))::float8, count(o.sent_at), coalesce(max(o.parts), 0)
FROM inbound i LEFT JOIN outbound o ON o.inbound_id = i.id
WHERE i.source = %s GROUP BY i.id ORDER BY i.id
"""
_UNANSWERED = """
SELECT count(*) FROM inbound i WHERE i.source LIKE %s AND NOT EXISTS (
    SELECT 1 FROM outbound o WHERE o.inbound_id = i.id AND o.state IN ('sent', 'failed'))
"""


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _stats(values: list[float], digits: int = 4) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(sum(values) / len(values), digits),
            **{f"p{int(q * 100)}": round(_quantile(values, q), digits)
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
        from workers.app import create_app

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
            process = subprocess.Popen([sys.executable, "-m", "workers.loadgen", str(path)],
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
                       _cpu_between(before, after), sampler.mean(start + warmup,
                                                                 start + warmup + window),
                       list(tap.events()) if tap else [])
        self.phases.append(run)
        return run

    def messages(self, run: PhaseRun) -> list[Message]:
        with self.system.connect() as conn:
            return [Message(*row) for row in conn.execute(_MESSAGES, (run.tag,))]

    def drain(self, timeout_s: float) -> float:
        """Wait until every message of the run has its reply (sent or failed); seconds waited."""
        started = time.monotonic()
        with self.system.connect() as conn:
            def done() -> bool:
                return conn.execute(_UNANSWERED, (f"{self.tag}-%",)).fetchone()[0] == 0
            try:
                _wait(done, timeout_s, "the replies", interval=0.5)
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


# --------------------------------------------------------------------------- stage profile

_STAGES = ("http_accept", "ingest_to_enqueue", "inbound_queue_wait", "dispatch_run",
           "service_queue_wait", "answer_run", "outbound_queue_wait", "deliver_run",
           "received_to_sent")


def stage_profile(run: PhaseRun, messages: list[Message]) -> dict[str, Any]:
    """Where a message spends its time, from Celery's task events and the stored timestamps.

    Per message received in the steady window: the client's HTTP round trip; from
    `inbound.received_at` to the dispatch task's `task-sent` event (commit and
    publish in the ingest); for each task, sent -> started (waiting in Redis or in a
    worker's prefetch) and started -> succeeded (running).
    """
    tasks: dict[str, dict[str, Any]] = defaultdict(dict)
    for event in run.events:
        kind, task_id = event.get("type", ""), event.get("uuid")
        if not task_id or not kind.startswith("task-"):
            continue
        task = tasks[task_id]
        task["id"] = task_id
        task[kind[5:]] = event.get("timestamp")
        for key in ("name", "args", "root_id", "parent_id", "runtime"):
            if event.get(key) is not None:
                task.setdefault(key, event[key])
    # Tasks carry batches: a message's dispatch and answer tasks are those whose ids hold
    # it, its deliver task the first one its answer (or, unrouted, its dispatch) published.
    task_of: dict[str, dict[int, dict[str, Any]]] = {"dispatch": {}, "answer": {}}
    deliver_of: dict[str, dict[str, Any]] = {}
    for task in tasks.values():
        name = task.get("name", "").removeprefix("govsms.")
        if name in task_of:
            try:  # Celery shortens long argument lists in its events: those are left out
                ids = ast.literal_eval(task.get("args", ""))[-1]
            except (ValueError, SyntaxError, IndexError, TypeError):
                continue
            for inbound_id in ids:
                task_of[name].setdefault(inbound_id, task)
        elif name == "deliver" and task.get("parent_id"):
            deliver_of.setdefault(task["parent_id"], task)
    samples: dict[str, list[float]] = defaultdict(list)
    http = {r[4]: r[2] - r[1] for r in run.loadgen["records"] if r[3] == 202}
    traced = 0
    for message in messages:
        if not run.window_start <= message.received < run.window_end:
            continue
        dispatch, answer = task_of["dispatch"].get(message.id), task_of["answer"].get(message.id)
        deliver = deliver_of.get((answer or dispatch)["id"]) if dispatch else None
        if not dispatch or not deliver or not all(
                t.get(k) for t in (dispatch, deliver) for k in ("sent", "started", "succeeded")):
            continue
        traced += 1
        if message.id in http:
            samples["http_accept"].append(http[message.id])
        samples["ingest_to_enqueue"].append(dispatch["sent"] - message.received)
        samples["inbound_queue_wait"].append(dispatch["started"] - dispatch["sent"])
        samples["dispatch_run"].append(dispatch["succeeded"] - dispatch["started"])
        if answer and all(answer.get(k) for k in ("sent", "started", "succeeded")):
            samples["service_queue_wait"].append(answer["started"] - answer["sent"])
            samples["answer_run"].append(answer["succeeded"] - answer["started"])
        samples["outbound_queue_wait"].append(deliver["started"] - deliver["sent"])
        samples["deliver_run"].append(deliver["succeeded"] - deliver["started"])
        if message.sent is not None:
            samples["received_to_sent"].append(message.sent - message.received)
    stored = [m for m in messages if run.window_start <= m.received < run.window_end
              and m.sent is not None and m.created is not None and m.claimed is not None]
    return {
        "messages_traced": traced,
        "stages_s": {stage: _stats(samples[stage]) for stage in _STAGES},
        "stored_timestamps_s": {
            "received_to_reply_created": _stats([m.created - m.received for m in stored]),
            "reply_created_to_claimed": _stats([m.claimed - m.created for m in stored]),
            "claimed_to_sent": _stats([m.sent - m.claimed for m in stored]),
        },
    }


# --------------------------------------------------------------------------- in process

def measure_pipeline(system: System, seconds: float, *, persons: int, batch: int) -> dict[str, Any]:
    """The pipeline's own work, no HTTP, no broker, no logging: this process records each
    message (a commit each, as the ingest does), then calls dispatch, answer and deliver
    on `batch` messages at a time, as the tasks would, with the file transport."""
    from replies.transports import FileTransport
    from services.phones import to_e164
    from workers import messages, pipeline
    from workers.app import Runtime
    from workers.loadgen import Traffic

    settings = system.settings
    p = Runtime(settings).pipeline
    p.pool.wait()
    transport = FileTransport(system.folder / f"inproc-{batch}.jsonl")
    traffic = Traffic(seed=99 + batch, persons=persons)
    tag = f"inproc-{uuid.uuid4().hex[:8]}-{batch}"
    done = 0
    steps: Counter = Counter()
    clock = time.process_time
    try:
        before, cpu_before = system.snapshot(), clock()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            ids = []
            t0 = clock()
            for _ in range(batch):
                sender, shortcode, text, _ = traffic.next()
                tariff = settings.tariffs.get(shortcode)
                with p.pool.connection() as conn:
                    ids.append(messages.record_inbound(
                        conn, source=tag, external_id=str(done + len(ids)),
                        sender=to_e164(sender, settings.regions.get(shortcode, "KZ")) or sender,
                        shortcode=shortcode, text=text,
                        tariff=(tariff.amount, tariff.currency) if tariff else None).id)
            t1 = clock()
            routed = pipeline.dispatch(p, ids)
            t2 = clock()
            queued = list(routed.outbound)
            for service, service_ids in routed.services.items():
                queued += pipeline.answer(p, service, service_ids)
            t3 = clock()
            pipeline.deliver(p.pool, transport, p.sealer, queued, settings.visibility_timeout)
            t4 = clock()
            steps.update({"record": t1 - t0, "dispatch": t2 - t1, "answer": t3 - t2,
                          "deliver": t4 - t3})
            done += batch
        elapsed, cpu = time.perf_counter() - start, clock() - cpu_before
        after = system.snapshot()
        with system.connect() as conn:
            answered = conn.execute(
                "SELECT count(DISTINCT o.inbound_id) FROM outbound o JOIN inbound i ON "
                "i.id = o.inbound_id WHERE i.source = %s AND o.state = 'sent'",
                (tag,)).fetchone()[0]
    finally:
        p.pool.close()
        transport.close()
    postgres = after.backends.get("bench", 0.0) - before.backends.get("bench", 0.0)
    return {"batch": batch, "messages": done, "answered": answered,
            "msgs_per_s": round(done / elapsed, 1),
            "python_cpu_ms_per_msg": round(cpu * 1000 / done, 2),
            "python_cpu_ms_per_msg_by_step": {k: round(v * 1000 / done, 2)
                                              for k, v in steps.items()},
            "postgres_cpu_ms_per_msg": round(postgres * 1000 / done, 2),
            "wall_ms_per_msg": round(elapsed * 1000 / done, 2)}


# --------------------------------------------------------------------------- the e2e run

def _durations(seconds: float) -> dict[str, float]:
    """Phase lengths for `seconds` (the default 5 keeps `make bench` within about 6 minutes)."""
    warmup = max(seconds, 1.0)
    return {"warmup": warmup, "saturate": 4 * seconds, "sustain": 2 * seconds,
            "half": 4 * seconds, "burst": min(8 * seconds, BURST_ISSUE_S), "inproc": seconds,
            "drain_cap": max(30.0, 3 * min(8 * seconds, BURST_ISSUE_S) + 60)}


def measure_e2e(seconds: float, *, redis_url: str | None = None, database_url: str | None = None,
                persons: int = 20_000, log: Any = print) -> dict[str, Any]:
    """The end-to-end figures, their details and the profile (see the module's docstring)."""
    d = _durations(seconds)
    with gateway(redis_url=redis_url, database_url=database_url, persons=persons,
                 log=log) as system:
        bench = Bench(system, persons=persons, log=log)
        sla = system.settings.sla_seconds
        quiet = system.snapshot()
        time.sleep(max(1.0, seconds / 2))
        idle = _cpu_between(quiet, system.snapshot())
        inproc = [measure_pipeline(system, d["inproc"], persons=persons, batch=batch)
                  for batch in (1, 50)]
        for one in inproc:
            log(f"  pipeline in one process, batches of {one['batch']}: {one['msgs_per_s']:,.0f}"
                f" msgs/s ({one['python_cpu_ms_per_msg']:.1f} ms Python + "
                f"{one['postgres_cpu_ms_per_msg']:.1f} ms PostgreSQL CPU each)")

        saturate = bench.phase("saturate", "window", warmup=d["warmup"], window=d["saturate"])
        bench.drain(60)
        sat_messages = bench.messages(saturate)
        capacity = bench.completion_rate(saturate, sat_messages)
        log(f"  saturate (closed loop, {WINDOW} in flight): {capacity:,.0f} replies/s")

        checks = []
        sustained, held = capacity, False
        for factor in (1.0, 0.9, 0.8):
            rate = max(capacity * factor, 1.0)
            run = bench.phase(f"sustain{len(checks) + 1}", "open", rate=rate,
                              warmup=d["warmup"], window=d["sustain"])
            msgs = bench.messages(run)
            bench.drain(60)
            completed, accepted = bench.completion_rate(run, msgs), bench.offered_rate(run)
            growth = bench.backlog(msgs, run.window_end) - bench.backlog(msgs, run.window_start)
            ok = completed >= 0.95 * accepted and growth <= max(rate * 1.0, 5)
            checks.append({"offered_per_s": round(rate, 1), "accepted_per_s": round(accepted, 1),
                           "completed_per_s": round(completed, 1), "backlog_growth": growth,
                           "held": ok})
            log(f"  sustain at {rate:,.0f}/s (open loop): {completed:,.0f} replies/s, "
                f"backlog {growth:+d} -> {'held' if ok else 'did not hold'}")
            if ok:
                sustained, held = min(completed, rate), True
                break
        if not held:  # the reply rate of the last step, offered more than it took
            sustained = checks[-1]["completed_per_s"]

        half = bench.phase("half", "open", rate=sustained / 2, warmup=d["warmup"],
                           window=d["half"], events=True)
        bench.drain(60)
        half_messages = bench.messages(half)
        steady = [m.sent - m.received for m in half_messages
                  if half.window_start <= m.received < half.window_end and m.sent is not None]
        unsent_half = sum(1 for m in half_messages
                          if half.window_start <= m.received < half.window_end and m.sent is None)
        profile = stage_profile(half, half_messages)
        log(f"  half load {sustained / 2:,.0f}/s: p50 {_quantile(steady, .5) or 0:.3f} s, "
            f"p99 {_quantile(steady, .99) or 0:.3f} s")

        burst_rate = BURST_FACTOR * sustained
        burst = bench.phase("burst", "open", rate=burst_rate, warmup=0.0, window=d["burst"])
        drained = bench.drain(d["drain_cap"])
        burst_messages = bench.messages(burst)
        latencies = [m.sent - m.received if m.sent is not None else math.inf
                     for m in burst_messages]
        ok = sum(1 for s in latencies if s <= sla)
        burst_ratio = ok / len(latencies) if latencies else 0.0
        # The ingest may take less than offered: then the bridge holds the rest back and the
        # burst reaches the gateway over a longer span, at the rate the ingest takes.
        accepted_ends = [r[2] for r in burst.loadgen["records"] if r[3] == 202]
        receipt_span = max(max(accepted_ends, default=burst.start) - burst.start, d["burst"], 1e-9)
        burst_accepted = len(accepted_ends) / receipt_span
        offered_at = {r[4]: r[0] for r in burst.loadgen["records"] if r[3] == 202}
        from_offer = [m.sent - offered_at[m.id] if m.sent is not None else math.inf
                      for m in burst_messages if m.id in offered_at]
        burst_drain_rate = len(burst_messages) / max(
            max((m.sent for m in burst_messages if m.sent), default=burst.start) - burst.start,
            1e-9)
        log(f"  burst {burst_rate:,.0f}/s for {d['burst']:.0f} s: {burst_ratio:.1%} within "
            f"{sla:.0f} s (drained {drained:.0f} s after)")

        integrity = _integrity(bench)
        versions = _server_versions(system)

    return {
        "figures": {
            "e2e_msgs_per_s": round(sustained, 1),
            "p50_latency_s_at_half_load": _round(_quantile(steady, 0.5)),
            "p95_latency_s_at_half_load": _round(_quantile(steady, 0.95)),
            "p99_latency_s_at_half_load": _round(_quantile(steady, 0.99)),
            "burst_sla_ok_ratio": round(burst_ratio, 4),
        },
        "details": {
            "method": "closed-loop saturation, then open-loop confirmation stepping down 10%",
            "window_in_flight": WINDOW, "loadgen_connections": CONNECTIONS,
            "durations_s": d, "persons": persons,
            "processes": [n for n in system.roots if n not in ("redis", "postgres")],
            "idle_cpu": idle, "inproc": inproc,
            "cpu_ms_per_msg_saturated": {
                name: round(cores * 1000 / capacity, 2)
                for name, cores in (saturate.cpu or {}).get("cores", {}).items()} | {
                "machine": round(saturate.cpu["machine_busy_cores"] * 1000 / capacity, 2)}
            if capacity and saturate.cpu else {},
            "saturate": {"completed_per_s": round(capacity, 1),
                         "accepted_per_s": round(bench.offered_rate(saturate), 1),
                         "queues_mean_depth": saturate.queues, "cpu": saturate.cpu,
                         "http_accept_s": _stats([r[2] - r[1] for r in saturate.loadgen["records"]
                                                  if r[3] == 202 and saturate.window_start
                                                  <= r[1] < saturate.window_end]),
                         "kinds": saturate.loadgen["kinds"]},
            "sustain_checks": checks, "sustained_held": held,
            "half": {"offered_per_s": round(sustained / 2, 1),
                     "accepted_per_s": round(bench.offered_rate(half), 1),
                     "messages_in_window": len(steady) + unsent_half,
                     "unsent_in_window": unsent_half,
                     "latency_s": _stats(steady), "queues_mean_depth": half.queues,
                     "cpu": half.cpu, "profile": profile,
                     "http_accept_s": _stats([r[2] - r[1] for r in half.loadgen["records"]
                                              if r[3] == 202 and half.window_start <= r[1]
                                              < half.window_end])},
            "burst": {"offered_per_s": round(burst_rate, 1),
                      "accepted_per_s": round(burst_accepted, 1),
                      "receipt_span_s": round(receipt_span, 1),
                      "sla_ok_ratio_from_offer": round(
                          sum(1 for s in from_offer if s <= sla) / len(from_offer), 4)
                      if from_offer else 0.0,
                      "seconds": d["burst"], "issue_seconds": BURST_ISSUE_S,
                      "messages": len(burst_messages), "within_sla": ok, "sla_s": sla,
                      "latency_s": _stats([s for s in latencies if s != math.inf]),
                      "unsent": sum(1 for s in latencies if s == math.inf),
                      "client_lag_s": _stats([r[1] - r[0] for r in burst.loadgen["records"]]),
                      "drain_rate_per_s": round(burst_drain_rate, 1),
                      "predicted_ratio_for_issue_burst": _predicted_burst_ratio(
                          burst_rate, burst_accepted, burst_drain_rate, sla),
                      "cpu": burst.cpu},
            "integrity": integrity,
            "server_versions": versions,
        },
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _predicted_burst_ratio(offered: float, arrival: float, drain: float, sla: float) -> float:
    """The share within `sla` of receipt of a BURST_ISSUE_S burst offered at `offered`/s that
    the ingest takes at `arrival`/s (over a longer span when it takes less) and the
    workers answer at `drain`/s.

    A message received t seconds into the burst waits behind arrival*t others and is
    sent at arrival*t/drain: late when t * (arrival/drain - 1) > sla.
    """
    if arrival <= drain or drain <= 0:
        return 1.0
    span = BURST_ISSUE_S * max(offered / arrival, 1.0)
    in_time = sla / (arrival / drain - 1)
    return round(min(1.0, in_time / span), 3)


_INTEGRITY = """
SELECT count(*) AS inbound,
       count(*) FILTER (WHERE r.sent_rows > 0) AS answered,
       count(*) FILTER (WHERE r.sent_rows = 0) AS missing,
       count(*) FILTER (WHERE r.sent_rows > r.parts) AS duplicated,
       count(*) FILTER (WHERE r.failed_rows > 0) AS failed
FROM inbound i
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE o.state = 'sent') AS sent_rows,
           count(*) FILTER (WHERE o.state = 'failed') AS failed_rows,
           coalesce(max(o.parts), 1) AS parts
    FROM outbound o WHERE o.inbound_id = i.id) r
WHERE i.source LIKE %s
"""


def _integrity(bench: Bench) -> dict[str, Any]:
    """Every message exactly one reply: PostgreSQL's rows and the transport's outbox agree."""
    with bench.system.connect() as conn:
        inbound, answered, missing, duplicated, failed = conn.execute(
            _INTEGRITY, (f"{bench.tag}-%",)).fetchone()
        ours = {row[0] for row in conn.execute(
            "SELECT id FROM inbound WHERE source LIKE %s", (f"{bench.tag}-%",))}
        dead = conn.execute("SELECT count(*) FROM dead_letters d JOIN inbound i ON "
                            "i.id = d.inbound_id WHERE i.source LIKE %s",
                            (f"{bench.tag}-%",)).fetchone()[0]
    parts_sent: Counter = Counter()
    inbound_sent: dict[int, set] = defaultdict(set)
    if bench.system.outbox.exists():
        with bench.system.outbox.open() as f:
            for line in f:
                sms = json.loads(line)
                if sms.get("inbound_id") in ours:
                    parts_sent[sms["outbound_id"]] += 1
                    inbound_sent[sms["inbound_id"]].add(sms["outbound_id"])
    posted = sum(p.loadgen["posted"] for p in bench.phases)
    accepted = sum(p.loadgen["accepted"] for p in bench.phases)
    errors: Counter = Counter()
    for p in bench.phases:
        errors.update(p.loadgen["errors"])
    return {"posted": posted, "accepted": accepted, "http_errors": dict(errors),
            "inbound": inbound, "answered": answered, "missing": missing,
            "duplicated": duplicated, "failed": failed, "dead_letters": dead,
            "outbox_replies": len(inbound_sent),
            "outbox_missing": len(ours - set(inbound_sent)),
            "outbox_duplicate_sms": sum(1 for n in parts_sent.values() if n > 1),
            "exactly_one_reply": bool(inbound == accepted and missing == 0 and duplicated == 0
                                      and len(inbound_sent) == inbound
                                      and all(n == 1 for n in parts_sent.values()))}


def _server_versions(system: System) -> dict[str, str]:
    found = {}
    try:
        found["redis-server"] = system.redis().info("server")["redis_version"]
    except redis.RedisError:
        pass
    try:
        with system.connect() as conn:
            found["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        pass
    return found


# --------------------------------------------------------------------------- the report

def run(seconds: float, out: Path, *, redis_url: str | None = None,
        database_url: str | None = None, persons: int = 20_000) -> dict[str, Any]:
    """Measure, print a table, write `out/benchmarks.json` and `out/benchmarks.md`."""
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True)

    log("parser and broker")
    figures: dict[str, Any] = {
        "parser_msgs_per_s": round(measure_parser(seconds)["parser_msgs_per_s"]),
        "broker_ops_per_s": round(measure_broker(seconds)),
    }
    busy = _machine_busy()
    time.sleep(1.0)
    busy_before = (_machine_busy()[0] - busy[0]) / 1.0
    if busy_before > 0.25:
        log(f"warning: the machine is busy before the run ({busy_before:.2f} cores in use): "
            f"the figures will be lower than on a quiet machine")
    log("end to end")
    e2e = measure_e2e(seconds, redis_url=redis_url, database_url=database_url, persons=persons,
                      log=log)
    figures.update(e2e["figures"])
    figures["e2e_to_broker_ratio"] = round(figures["e2e_msgs_per_s"] / figures["broker_ops_per_s"],
                                           5)
    details = e2e["details"]
    report = {"measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "cores": os.cpu_count(), "machine": platform.machine(),
              "cpu_model": _cpu_model(),
              "versions": {**_versions(), **details.pop("server_versions")},
              "seconds_per_figure": seconds,
              "machine_busy_cores_before": round(busy_before, 2),
              "burst_seconds": details["burst"]["seconds"],
              "burst_factor": BURST_FACTOR,
              "exactly_one_reply": details["integrity"]["exactly_one_reply"],
              "duplicates": details["integrity"]["duplicated"]
              + details["integrity"]["outbox_duplicate_sms"],
              "missing": details["integrity"]["missing"],
              **figures, "details": details,
              "bench_wall_s": round(time.monotonic() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "benchmarks.md").write_text(markdown(report))
    print(f"\n{'figure':<30}{'measured':>14}  target")
    for key, value in figures.items():
        print(f"{key:<30}{_fmt(value):>14}  {TARGETS.get(key, 'reported')}")
    integrity = details["integrity"]
    print(f"{'exactly one reply each':<30}{integrity['exactly_one_reply']!s:>14}  "
          f"({integrity['inbound']:,} messages, {integrity['missing']} missing, "
          f"{report['duplicates']} duplicated)")
    print(f"written: {out / 'benchmarks.md'}, {out / 'benchmarks.json'} "
          f"({report['bench_wall_s']:.0f} s)")
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value < 10:
        return f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _cpu_table(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return "(not measured)"
    machine = cpu["machine_cores"]
    rows = [f"| {name} | {cores:.2f} | {cores / machine:.0%} |"
            for name, cores in cpu["cores"].items() if cores >= 0.005]
    backends = ", ".join(f"{name} {cores:.2f}" for name, cores in
                         cpu["postgres_backends_by_client"].items() if cores >= 0.005)
    return ("| process (with its children) | cores | share of the machine |\n|---|---|---|\n"
            + "\n".join(rows)
            + f"\n| **machine busy** | {cpu['machine_busy_cores']:.2f} | "
              f"{cpu['machine_busy_cores'] / machine:.0%} |\n\n"
              f"PostgreSQL backends by the process they serve (cores): {backends or 'n/a'}.")


def _stage_table(profile: dict[str, Any]) -> str:
    labels = {
        "http_accept": "HTTP accept (client: POST -> 202)",
        "ingest_to_enqueue": "ingest: INSERT committed -> dispatch task published",
        "inbound_queue_wait": "queue `inbound`: published -> dispatch started",
        "dispatch_run": "dispatch: parse, route, UPDATE",
        "service_queue_wait": "queue `svc.<service>`: published -> answer started",
        "answer_run": "answer: registry look-ups, reply INSERT",
        "outbound_queue_wait": "queue `outbound`: published -> deliver started",
        "deliver_run": "deliver: claim, commit, transport, mark sent",
        "received_to_sent": "**received -> sent (total)**",
    }
    rows = []
    for stage, label in labels.items():
        s = profile["stages_s"].get(stage, {"n": 0})
        if s.get("n"):
            rows.append(f"| {label} | {s['n']:,} | {s['mean'] * 1000:.1f} | "
                        f"{s['p50'] * 1000:.1f} | {s['p95'] * 1000:.1f} | "
                        f"{s['p99'] * 1000:.1f} |")
    stored = profile["stored_timestamps_s"]
    for key, label in (("received_to_reply_created", "stored: received_at -> reply created_at"),
                       ("reply_created_to_claimed", "stored: created_at -> claimed_at"),
                       ("claimed_to_sent", "stored: claimed_at -> sent_at")):
        s = stored[key]
        if s.get("n"):
            rows.append(f"| {label} | {s['n']:,} | {s['mean'] * 1000:.1f} | "
                        f"{s['p50'] * 1000:.1f} | {s['p95'] * 1000:.1f} | "
                        f"{s['p99'] * 1000:.1f} |")
    return ("| stage | messages | mean ms | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows))


def markdown(report: dict[str, Any]) -> str:
    """docs/benchmarks.md: the figures, how they were measured, the profile and the analysis."""
    d = report["details"]
    figures = [k for k in ("parser_msgs_per_s", "broker_ops_per_s", "e2e_msgs_per_s",
                           "p50_latency_s_at_half_load", "p95_latency_s_at_half_load",
                           "p99_latency_s_at_half_load", "burst_sla_ok_ratio",
                           "e2e_to_broker_ratio") if k in report]
    rows = "\n".join(f"| `{k}` | {_fmt(report[k])} | {TARGETS.get(k, 'reported')} |"
                     for k in figures)
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    integrity = d["integrity"]
    checks = "\n".join(f"| {c['offered_per_s']:,.1f} | {c['accepted_per_s']:,.1f} | "
                       f"{c['completed_per_s']:,.1f} | {c['backlog_growth']:+d} | "
                       f"{'yes' if c['held'] else 'no'} |" for c in d["sustain_checks"])
    burst = d["burst"]
    kinds = d["saturate"]["kinds"]
    total_kinds = sum(kinds.values()) or 1
    mix = ", ".join(f"{k} {v / total_kinds:.1%}" for k, v in kinds.items())
    exactly_one = "yes" if integrity["exactly_one_reply"] else "NO"
    none_held = "" if d["sustained_held"] else " (none held: the reply rate of the last step)"
    accept = d["saturate"]["http_accept_s"]
    return f"""# Benchmarks

Written by `make bench` ({report['measured_at']}, {report['bench_wall_s']:.0f} s) on
{report['cores']} cores ({report['cpu_model']}, {report['machine']}); {versions}.
`--seconds {report['seconds_per_figure']:g}`; the machine had
{report['machine_busy_cores_before']:.2f} cores busy before the run. Every number here, the
analysis included, is regenerated by each run; the reasoning of the analysis was
written from runs on this machine.

| figure | measured | target |
|---|---|---|
{rows}

{_perturbation(d)}Every message exactly one reply: **{exactly_one}**:
{integrity['posted']:,} posted, {integrity['accepted']:,} accepted (202), {integrity['inbound']:,}
recorded, {integrity['answered']:,} answered, {integrity['missing']} missing,
{integrity['duplicated']} duplicated in PostgreSQL, {integrity['outbox_duplicate_sms']} SMS written
twice by the transport, {integrity['outbox_missing']} missing from the outbox,
{integrity['failed']} failed, {integrity['dead_letters']} dead letters, HTTP errors
{integrity['http_errors'] or 'none'}.

## What runs

`govsms bench` starts a private Redis and PostgreSQL in a temporary folder (or uses
GOVSMS_REDIS_URL / GOVSMS_DATABASE_URL), applies the migrations, loads the demo
dataset ({d['persons']:,} synthetic people, through `workers.extracts`) and starts the
gateway's own processes as `workers.run.processes()` lists them, but beat and flower
({', '.join(f'`{n}`' for n in d['processes'])}), with the file transport, a generated
bridge secret and secret key, and the settings of the environment (GOVSMS_CONCURRENCY,
GOVSMS_LOG_LEVEL, ...; the defaults here).

The load generator (`workers/loadgen.py`) is a process of its own on the same two
cores: asyncio + httpx, {d['loadgen_connections']} keep-alive connections, posting to
`POST /v1/messages/inbound` with `X-Bridge-Token`, each message with a unique id. The
traffic: the demo personas sending every row of seed tables 1-3 after every keyword of
its service (Latin, Cyrillic and Kazakh spellings), citizens of the demo dataset asking
about their own cars, children and housing places (plates in Latin or Cyrillic look-alike
letters, spaced or not), 10% malformed texts, and a little 8188 registration traffic
(0.5% new accounts, each an argon2id hash of about 0.1 s of CPU). This run's mix: {mix}.

## How each figure is measured

- `e2e_msgs_per_s`: first **saturate**: a closed loop keeps {d['window_in_flight']} messages
  posted and not yet answered (a reply counts once the file transport wrote it), so the
  gateway runs flat out with a bounded backlog; replies per second over a
  {d['durations_s']['saturate']:g} s window after a {d['durations_s']['warmup']:g} s warm-up:
  **{d['saturate']['completed_per_s']:,.1f}/s**. Then **sustain**: an open loop (Poisson
  arrivals, whatever the gateway does) at that rate for {d['durations_s']['sustain']:g} s
  after the warm-up; it holds when the replies keep pace (>= 95% of the accepted rate) and
  the backlog grows by less than a second of traffic; else 10% lower. The figure is the
  reply rate of the step that held{none_held}.

  | offered /s | accepted /s | replies /s | backlog growth | held |
  |---|---|---|---|---|
{_indent(checks, 2)}

- `p50/p95/p99_latency_s_at_half_load`: an open loop at half that rate
  ({d['half']['offered_per_s']:,.1f}/s) for {d['durations_s']['half']:g} s after the warm-up;
  latency is `outbound.sent_at - inbound.received_at` (the last part) of the
  {d['half']['messages_in_window']:,} messages received in that window
  ({d['half']['unsent_in_window']} not sent).
- `burst_sla_ok_ratio`: an open loop at {report['burst_factor']:g}x that rate
  ({burst['offered_per_s']:,.1f}/s offered) for **{burst['seconds']:g} s**, not the
  {burst['issue_seconds']:g} s the issue asks for, to keep `make bench` within about 6 minutes;
  then drained. The share of its {burst['messages']:,} messages sent within
  {burst['sla_s']:g} s of receipt (a message never sent counts as late). Latency in the burst:
  p50 {_fmt(burst['latency_s'].get('p50'))} s, p99 {_fmt(burst['latency_s'].get('p99'))} s,
  max {_fmt(burst['latency_s'].get('max'))} s; replies went out at
  {burst['drain_rate_per_s']:,.1f}/s from the start of the burst to the last reply.
  The ingest took {burst['accepted_per_s']:,.1f}/s, so the burst reached it over
  {burst['receipt_span_s']:g} s: the load generator (the bridge) held requests back for a free
  connection for up to {_fmt(burst['client_lag_s'].get('max'))} s (p99
  {_fmt(burst['client_lag_s'].get('p99'))} s) before the gateway received them. That wait is not
  in the ratio, which counts from receipt as the SLA does; counted from when the bridge
  had the message, {burst['sla_ok_ratio_from_offer']:.1%} were answered within
  {burst['sla_s']:g} s. A {burst['issue_seconds']:g} s burst at these rates would leave a
  backlog cleared too late for part of it: predicted ratio
  **{burst['predicted_ratio_for_issue_burst']:.2f}** (a message received t s into the burst is
  sent after about t x (ingest rate / reply rate - 1) s).
- `parser_msgs_per_s`: `KeywordIndex.parse` alone, one process, over a mix of every
  service in every script with about 10% malformed texts (`parsers/bench.py`).
- `broker_ops_per_s`: a private Redis's own ceiling in this run, unpipelined
  LPUSH+RPOP of 200-byte messages from one client, each counted as one operation.
- `e2e_to_broker_ratio`: `e2e_msgs_per_s / broker_ops_per_s`.

## Where the CPU goes (saturated)

CPU of each process tree from `/proc/<pid>/stat` (Redis from its own `INFO cpu`) over
the {d['durations_s']['saturate']:g} s saturation window; PostgreSQL backends are attributed to
the client process holding the other end of their socket.

{_cpu_table(d['saturate']['cpu'])}

Mean queue depths (Redis lists; `unacked` = tasks workers hold):
{_depths(d['saturate']['queues_mean_depth'])}. HTTP accept at saturation (client, POST -> 202):
p50 {_fmt(accept.get('p50'))} s, p99 {_fmt(accept.get('p99'))} s.

## Where a message spends its time (half load)

From Celery's own task events (`task-sent`, `task-started`, `task-succeeded`, the ones
Flower reads; the bench turns the workers' events on for this window, as Flower does),
captured from Redis during the half-load window and joined to the stored rows by the
ids each task carries and each deliver task's parent, for
{d['half']['profile']['messages_traced']:,} messages. The stages overlap a little (a task
publishes the next one before it logs and acknowledges), and not-found replies skip
the answer task; the `stored` rows use PostgreSQL's `now()` of each transaction.

{_stage_table(d['half']['profile'])}

CPU at half load:

{_cpu_table(d['half']['cpu'])}

{analysis(report)}
"""


def _perturbation(details: dict[str, Any]) -> str:
    """A warning when something else used the machine during a measuring window."""
    busy = {name: details[name]["cpu"]["cores"].get(OTHER, 0.0)
            for name in ("saturate", "half", "burst") if details[name].get("cpu")}
    if max(busy.values(), default=0.0) < 0.2:
        return ""
    return ("**Warning: something else used the machine during the run** (cores outside the "
            "bench's processes: " + ", ".join(f"{k} {v:.2f}" for k, v in busy.items())
            + "); the figures are lower than on a quiet machine.\n\n")


def _depths(depths: dict[str, float]) -> str:
    return ", ".join(f"`{k}` {v:g}" for k, v in depths.items()) or "n/a"


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _per_msg(cores: float, rate: float) -> float:
    return cores * 1000 / rate if rate else 0.0


def analysis(report: dict[str, Any]) -> str:
    """The bottleneck and what would raise throughput, from this run's own numbers."""
    d = report["details"]
    sat = d["saturate"]
    cpu = sat["cpu"]
    rate = sat["completed_per_s"]
    if not cpu or not rate or not d.get("inproc"):
        return "## Analysis\n\nNot enough data in this run for an analysis.\n"
    cores, backends = cpu["cores"], cpu["postgres_backends_by_client"]
    machine = _per_msg(cpu["machine_busy_cores"], rate)
    other = _per_msg(cores.get(OTHER, 0.0) + cores.get(STEAL, 0.0), rate)
    kernel = _per_msg(cores.get(KERNEL, 0.0), rate)
    loadgen = _per_msg(cores.get("loadgen", 0.0) + cores.get("bench", 0.0), rate)
    own = machine - other - loadgen
    one, fifty = d["inproc"][0], d["inproc"][-1]
    inproc = one["python_cpu_ms_per_msg"] + one["postgres_cpu_ms_per_msg"]
    steps = one["python_cpu_ms_per_msg_by_step"]
    services = [k for k in cores if k.startswith("worker-svc.")]
    stages = [("ingest (HTTP, INSERT, publish)", ["ingest"], "record"),
              ("dispatch task", ["worker-inbound"], "dispatch"),
              ("answer task", services, "answer"),
              ("deliver task", ["worker-outbound"], "deliver")]
    rows, hop_overheads = [], []
    for label, names, step in stages:
        python = sum(_per_msg(cores.get(n, 0.0), rate) for n in names)
        database = sum(_per_msg(backends.get(n, 0.0), rate) for n in names)
        alone = steps.get(step, 0.0)
        rows.append(f"| {label} | {python:.1f} | {database:.1f} | {alone:.2f} | "
                    f"{python - alone:.1f} |")
        if step in ("dispatch", "deliver"):
            hop_overheads.append(python - alone)
    hop = sum(hop_overheads) / len(hop_overheads)
    redis_ms = _per_msg(cores.get("redis", 0.0), rate)
    busy = cpu["machine_busy_cores"] / cpu["machine_cores"]
    bound = (f"At saturation the machine is {busy:.0%} busy (CPU-bound)"
             if busy > 0.9 else f"At saturation the machine is only {busy:.0%} busy (the "
                                 f"processes wait on each other more than on the CPU)")
    half = d["half"]["profile"]["stages_s"]
    slowest = max((k for k in half if k not in ("received_to_sent", "http_accept")
                   and half[k].get("n")), key=lambda k: half[k]["mean"], default=None)
    slowest_ms = half[slowest]["mean"] * 1000 if slowest else 0.0
    inbound_depth = sat["queues_mean_depth"].get("inbound", 0)
    burst = d["burst"]
    target_ms = 1000 * (report["cores"] or 1) / 1000
    return f"""## Analysis

**The bottleneck is CPU spent around the pipeline, not in it.** {bound} and a message
costs {machine:.1f} ms of CPU (all cores together):
{own:.1f} ms in the gateway's own processes, Redis, PostgreSQL and the kernel's interrupt
handling of their loopback traffic ({kernel:.1f} ms), {loadgen:.1f} ms in the load generator and
the bench (on a real deployment the SMSC bridge runs elsewhere), and {other:.1f} ms in
other processes on the machine. The pipeline's
own work, the same steps called in one process with no HTTP, no broker and no logging,
costs {inproc:.1f} ms per message ({one['python_cpu_ms_per_msg']:.1f} ms Python,
{one['postgres_cpu_ms_per_msg']:.1f} ms PostgreSQL) and runs {one['msgs_per_s']:,.0f} msgs/s on
one core; the parser's share of it is {1000 / report['parser_msgs_per_s']:.3f} ms. So about
{1 - inproc / own:.0%} of the CPU a message costs is the machinery that carries it: the HTTP
stack, three Celery hops and their logging and events. Redis itself takes {redis_ms:.1f} ms per
message: the broker is far from its ceiling (`e2e_to_broker_ratio`
{report['e2e_to_broker_ratio']:.4f}).

CPU per message at saturation, by stage (ms; Python = the process and its pool children,
PostgreSQL = the backends serving it; "alone" = the same step's Python in one process):

| stage | Python | PostgreSQL | alone | overhead |
|---|---|---|---|---|
{chr(10).join(rows)}

A Celery hop costs about **{hop:.1f} ms of CPU per task** beyond the work it runs (the
dispatch and deliver rows): fetching the message from Redis, prefork IPC between the
worker and its child, the late acknowledgement, the `task-sent` event (the workers'
own events are off unless Flower watches), publishing the next task and the INFO log
lines (Celery's "received"/"succeeded" and ours, JSON, masked). At these rates each
message still pays it about three times, batches being of one or two, for work that takes well under a millisecond in
dispatch and deliver. With every process sharing two cores, the backlog of a saturated
gateway sits in the first queue (`inbound`, mean depth {inbound_depth:g});
every stage runs at the speed the shared CPU allows.

Latency at half load is short and made of many small waits: p50
{_fmt(report.get('p50_latency_s_at_half_load'))} s, p99
{_fmt(report.get('p99_latency_s_at_half_load'))} s; the largest stage on average is
`{slowest}` ({slowest_ms:.1f} ms).
In the burst ({burst['offered_per_s']:,.0f}/s offered) the ingest took
{burst['accepted_per_s']:,.0f}/s while replies went out at about
{burst['drain_rate_per_s']:,.0f}/s, so the backlog grew at the difference: a
{burst['seconds']:g} s burst gave {report['burst_sla_ok_ratio']:.1%} within the SLA of receipt
({burst['sla_ok_ratio_from_offer']:.1%} counted from when the bridge had the message); the
{burst['issue_seconds']:g} s burst of the issue would give about
{burst['predicted_ratio_for_issue_burst']:.0%}. The ingest, sharing the cores with the workers,
is the first to push back: the bridge waited up to {_fmt(burst['client_lag_s'].get('max'))} s
for one of its {d['loadgen_connections']} connections, and an SMSC would see the same
back-pressure.

The target of 1,000 msgs/s on {report['cores']} cores leaves {target_ms:.1f} ms of CPU per
message for everything. This run: {report['e2e_msgs_per_s']:,.0f} msgs/s, about
{1000 / max(report['e2e_msgs_per_s'], 1):.0f}x short. Even the pipeline alone in one process with
batches of 50 costs {fifty['python_cpu_ms_per_msg'] + fifty['postgres_cpu_ms_per_msg']:.1f} ms
per message; tuning alone will not close that gap.

## What would raise throughput

In order of expected gain, each estimated from the numbers above:

1. **Bigger batches from the first hop on.** Every task takes a list of ids, and the
   ingest records and enqueues together what arrives within `ingest_linger_ms` (10 ms):
   one transaction, one dispatch task. At these rates that is one or two messages per
   batch: the bridge's 16 connections each wait for their answer, so about
   {rate * 0.01:.1f} messages arrive per 10 ms. Batches grow only with the rate (or a
   longer linger, paid in latency by every message). A trial with a bridge posting 100
   messages per request to `POST /v1/messages/inbound/batch` over 4 connections gained
   about 15%: the first hop was then batched, but dispatch still fans out one answer task
   per service and each answer task one deliver task, so the outbound worker runs many
   small tasks. At ~{hop:.0f} ms per hop, batches of 50 at every hop would cut the per-message
   hop cost from ~{3 * hop:.0f} ms to ~{3 * hop / 50:.1f} ms; in one process, batches of 50 also cut
   the steps' own CPU from {inproc:.1f} to
   {fifty['python_cpu_ms_per_msg'] + fifty['postgres_cpu_ms_per_msg']:.1f} ms per message.
2. **Fewer hops per message.** Parse at the ingest (the parser costs
   {1000 / report['parser_msgs_per_s']:.3f} ms) and publish straight to `svc.<service>`, and
   deliver in the answer task when the transport is local or fast (file, Kannel), leaving
   the outbound queue for retries: one hop instead of three, ~{2 * hop:.0f} ms less per message.
3. **A cheaper ingest.** The ingest spends
   {_per_msg(cores.get('ingest', 0.0), rate):.1f} ms per message for
   {steps.get('record', 0.0):.2f} ms of recording: FastAPI and pydantic per request, then
   per batch a thread-pool hop, one INSERT per message in one pipelined round trip, a
   commit and a Celery publish. The load generator, standing in for the bridge on the
   same two cores, costs as much again per request.
4. **Cheaper hops.** Log the per-message
   INFO lines at DEBUG (about ten JSON lines per message, each masked by a regex), and run
   the inbound and outbound workers on a thread pool instead of prefork on a small machine
   (no pickling through pipes to a child).
5. **Fewer round trips.** About 13 statements (and savepoints), 6 commits and 4 pool
   checkouts, each with a health check, per message (counted with cProfile on the
   in-process loop). Checking a pooled connection
   on every checkout (`check=ConnectionPool.check_connection`) adds a round trip per
   checkout: check it only after an error. Fold `unfinished_inbound` + `mark_dispatched`
   into one `UPDATE ... RETURNING`, and claim + mark sent into one statement for transports
   that answer synchronously. psycopg 3 already prepares a statement after its fifth
   execution on a connection, so explicit prepared statements add little.
6. **Prefetch and processes.** `unacked` (tasks held by workers) averaged
   {sat['queues_mean_depth'].get('unacked', 0):g}: prefetch is not what starves the workers, the
   CPU is. On 2 cores, {len([k for k in cores if k.startswith('worker-')])} worker
   processes plus the ingest compete for the same cores; one worker consuming every
   `svc.*` queue would do with fewer processes. The design scales out by adding
   machines (KEDA on queue depth, docs/deploy.md): the per-message CPU above sets the
   cores needed, about {own:.0f} cores per 1,000 msgs/s today.
"""
