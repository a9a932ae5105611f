"""The system under test: servers, migrations, demo data and the gateway's own processes.

`gateway()` starts what `workers.local.gateway.processes()` lists (but beat, flower and the
SMPP receiver) with `workers.local.gateway.start`, and private servers with its
`start_server`, under one `Supervisor`. The outbound transport is the file transport unless
the caller names another (`transport=`: the Kannel phases point it at smsbox's sendsms).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from pydantic import SecretStr

from bench import cpu
from bench.loadgen import REGISTERED_PHONES
from services.phones import to_e164
from workers import db, extracts
from workers.local import demo as demo_data
from workers.local import embedded
from workers.local import gateway as local_gateway
from workers.local.gateway import start_server
from workers.local.supervisor import Supervisor
from workers.settings import Settings

BENCH_FLOOD_LIMIT = 10**9  # MOs per phone per window: never reached, always counted


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

    def start_flower(self) -> None:
        """Flower as `govsms run` starts it: while it watches, every worker sends task events."""
        logs = self.folder / "logs"
        env = local_gateway.child_env(self.settings, carry_secrets=True, extra={
            "GOVSMS_FLOWER_PORT": str(embedded.free_port())})
        local_gateway.start(self.settings, logs, local_gateway.supervised(
            self.supervisor, logs, env), only=("flower",))
        self.roots.update((c.name, c.process.pid) for c in self.supervisor.children
                          if c.name == "flower")

    def snapshot(self, loadgen: int | None = None) -> cpu.CpuSnapshot:
        """CPU so far of each process group, and of each PostgreSQL backend by its client."""
        return cpu.snapshot(self.roots, self.connect,
                            None if self.embedded_redis else self.redis,
                            own_postgres=self.embedded_postgres, loadgen=loadgen)


def wait(check: Any, timeout_s: float, what: str, interval: float = 0.2) -> Any:
    """The first true value of `check()` within `timeout_s`, else RuntimeError naming `what`."""
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
    text = json.dumps(demo_data.dataset(persons=persons), default=str)
    with psycopg.connect(database_url) as conn:
        counts = extracts.load(conn, extracts.validate(text))
        for n, phone in enumerate(REGISTERED_PHONES):
            conn.execute(_REGISTERED, (f"bench.repeat.{n:04d}", to_e164(phone, "VN"),
                                       f"9{n:08d}"))
    return counts


@contextmanager
def gateway(*, redis_url: str | None = None, database_url: str | None = None,
            persons: int = 20_000, log: Any = print,
            transport: str | Callable[[Settings], str] | None = None) -> Iterator[System]:
    """Servers (configured, else private), migrations, demo data and the gateway's processes.

    `transport`: the outbound transport's URL, or a function of the gateway's settings giving
    it (a Kannel dlr-url needs the ingest's port and the bridge secret, both chosen here);
    by default the file transport, into `System.outbox`.
    """
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
            "transport": f"file://{folder / 'outbox.jsonl'}", "smpp_receiver": None,
            # The personas, a few phones, stand in for many citizens (half the traffic): the
            # flood limit is counted for every MO but set past reach, the repeat rule is off.
            "flood_limit": BENCH_FLOOD_LIMIT, "repeat_window_s": 0})
        if transport is not None:
            settings = settings.model_copy(update={
                "transport": transport(settings) if callable(transport) else transport})
        started = time.monotonic()
        env = local_gateway.child_env(settings, carry_secrets=True)
        local_gateway.start(settings, logs, local_gateway.supervised(supervisor, logs, env),
                            skip=("beat", "flower", "console", "smpp-ingest"))
        roots.update((child.name, child.process.pid) for child in supervisor.children
                     if not child.stop_last)
        log(f"  {len([n for n in roots if n.startswith(('ingest', 'worker'))])} gateway "
            f"processes ready in {time.monotonic() - started:.0f} s")
        yield System(settings, folder, supervisor, redis_url, database_url, roots,
                     embedded_postgres=own_postgres, embedded_redis=own_redis)
    finally:
        supervisor.stop()
        if not os.environ.get("GOVSMS_BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)

