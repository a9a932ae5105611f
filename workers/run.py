"""`govsms run`: the whole gateway on one machine, with embedded servers when none is configured."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from replies.masking import redact_secrets
from workers import db, embedded, extracts, replay
from workers import demo as demo_data
from workers.celery_app import BULK, INBOUND, OUTBOUND, all_queues
from workers.settings import RUNTIME_FILE, Settings
from workers.supervisor import Child, Supervisor

log = logging.getLogger(__name__)


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _start_server(sup: Supervisor, spec: embedded.ServerSpec, logs: Path) -> str:
    child = sup.start(Child(spec.name, spec.argv, logs / f"{spec.name}.log", user=spec.user,
                            group=spec.group, stop_signal=signal.SIGINT
                            if spec.name == "postgres" else signal.SIGTERM))
    embedded.wait_ready(spec, child.alive)
    return spec.url


def run(settings: Settings, *, demo: bool = False) -> int:
    """Start servers as needed, migrate, start the gateway's processes and supervise them."""
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings.ensure_secrets()
    sup = Supervisor()
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runtime = data_dir / RUNTIME_FILE
    try:
        redis_url = settings.redis_url or _start_server(sup, embedded.redis_spec(data_dir), logs)
        database_url = settings.database_url or _start_server(
            sup, embedded.postgres_spec(data_dir), logs)
        runtime.write_text(json.dumps({"redis_url": redis_url, "database_url": database_url,
                                       "pid": os.getpid()}))
        applied = db.migrate(database_url)
        log.info("migrations applied: %s", ", ".join(applied) or "none pending")
        if demo:
            _seed_demo_once(database_url)
        env = {**os.environ, "GOVSMS_REDIS_URL": redis_url, "GOVSMS_DATABASE_URL": database_url,
               "GOVSMS_DATA_DIR": str(data_dir), "GOVSMS_TRANSPORT": settings.transport_url}
        children = [sup.start(Child(name, argv, logs / f"{name}.log", env))
                    for name, argv in processes(settings).items()]
        _wait_listening(settings, children[0].alive)
        _print_banner(settings, redis_url, database_url, logs)
        while not stop:
            sup.check()
            time.sleep(0.5)
        log.info("stopping")
        return 0
    finally:
        sup.stop()
        runtime.unlink(missing_ok=True)


def processes(settings: Settings) -> dict[str, list[str]]:
    """The gateway's processes by name, ingest first: what `govsms run` starts and supervises.

    Each service queue has a worker of its own, so a slow registry holds up only
    its own service; those workers wait on I/O, so they run a thread pool.
    """
    celery = _python("-m", "celery", "-A", "workers.celery_app")
    opts = ["--without-gossip", "--without-mingle", "--loglevel", settings.log_level]

    def worker(name: str, queue: str, *pool: str) -> list[str]:
        return [*celery, "worker", "-Q", queue, "-n", f"{name}@%h", *opts, *pool]

    prefork = ("--concurrency", str(settings.concurrency))
    threads = ("--pool", "threads", "--concurrency", str(2 * settings.concurrency))
    found = {"ingest": _python("-m", "workers.cli", "ingest"),
             "worker-inbound": worker("inbound", INBOUND, *prefork)}
    for queue in all_queues(settings):
        if queue.startswith("svc."):
            found[f"worker-{queue}"] = worker(queue, queue, *threads)
    found["worker-outbound"] = worker("outbound", OUTBOUND, *prefork)
    found["worker-bulk"] = worker("bulk", BULK, *prefork)
    found["worker-replay"] = worker("replay", replay.QUEUE, "--pool", "threads",
                                    "--concurrency", "2")
    if settings.smpp_receiver:
        found["smpp-ingest"] = _python("-m", "workers.cli", "smpp-ingest")
    found["beat"] = [*celery, "beat", "--loglevel", settings.log_level]
    found["flower"] = _python("-m", "workers.cli", "flower")
    return found


def _seed_demo_once(database_url: str) -> None:
    """Load the demo dataset on first start (when MBG is empty)."""
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT EXISTS (SELECT 1 FROM mbg.subscribers)").fetchone()[0]:
            return
        text = json.dumps(demo_data.dataset(), default=str)
        counts = extracts.load(conn, extracts.validate(text))
    log.info("demo dataset loaded: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))


def _wait_listening(settings: Settings, alive: Callable[[], bool], timeout_s: float = 30) -> None:
    """Wait until the ingest accepts connections, so the banner never promises too early."""
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            socket.create_connection((host, settings.http_port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise embedded.EmbeddedError(f"ingest is not listening on {host}:{settings.http_port}; "
                                 "see its log")


def _mask_url(url: str) -> str:
    """`url` as the banner shows it: its password, tokens (a dlr-url's too) as `***`."""
    return redact_secrets(url)


def _print_banner(settings: Settings, redis_url: str, database_url: str, logs: Path) -> None:
    print(f"""govsms is running. Ctrl-C stops it.
  ingest HTTP   {settings.ingest_url}/sms/inbound  (Kannel get-url), /v1/messages/inbound (JSON)
  redis         {_mask_url(redis_url)}
  postgresql    {_mask_url(database_url)}
  flower        http://{settings.flower_host}:{settings.flower_port}/  (user {settings.flower_user},
                password in {settings.data_dir}/flower_password unless configured)
  metrics       {settings.ingest_url}/metrics   health {settings.ingest_url}/readyz
  transport     {_mask_url(settings.transport_url)}
  logs          {logs}/
Try:  govsms send --from +77011234567 --to 1414 --wait 10 "hello"
""", flush=True)
