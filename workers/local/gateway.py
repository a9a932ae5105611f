"""The gateway's processes, and the one way every harness starts them: `govsms run`, the
bench and the end-to-end tests.

`child_env` is their environment for given settings, `start` spawns those `processes()`
lists (or some of them) and waits until each worker says it is ready and the ingest answers.
How a process is spawned is the caller's: under a `Supervisor` (`supervised`) or as it likes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import httpx

from workers.local import embedded
from workers.local.supervisor import Child, Supervisor
from workers.queues import BACKGROUND, BULK, INBOUND, OUTBOUND, all_queues
from workers.settings import Settings


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def processes(settings: Settings) -> dict[str, list[str]]:
    """The gateway's processes by name, ingest first: what `govsms run` starts and supervises.

    Each service queue has a worker of its own, so a slow registry holds up only
    its own service; those workers wait on I/O, so they run a thread pool. So do the
    senders: a deliver task waits on its link (Kannel answers a window of submits in about
    its slowest answer, 40-400 ms), and two processes with a task each held replies through
    Kannel to about 300 a second where four threads of one process kept up with 560.
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
    found["worker-outbound"] = worker("outbound", OUTBOUND, *threads)
    found["worker-bulk"] = worker("bulk", BULK, *threads)
    found["worker-replay"] = worker("replay", BACKGROUND, "--pool", "threads",
                                    "--concurrency", "2")
    if settings.smpp_receiver:
        found["smpp-ingest"] = _python("-m", "workers.cli", "smpp-ingest")
    found["beat"] = [*celery, "beat", "--loglevel", settings.log_level]
    found["flower"] = _python("-m", "workers.cli", "flower")
    found["console"] = _python("-m", "workers.cli", "console")
    return found


def start_server(sup: Supervisor, spec: embedded.ServerSpec, logs: Path) -> Child:
    """Start an embedded server under `sup`, stopped after every other child; wait until ready."""
    child = sup.start(Child(spec.name, spec.argv, logs / f"{spec.name}.log", user=spec.user,
                            group=spec.group, stop_signal=signal.SIGINT
                            if spec.name == "postgres" else signal.SIGTERM, stop_last=True))
    embedded.wait_ready(spec, child.alive)
    return child


Alive = Callable[[], bool]
# Starts one process, its output appended to LOGS/NAME.log; answers whether it still runs.
Spawn = Callable[[str, list[str]], Alive]
WORKER_READY_S = 90.0
INGEST_READY_S = 30.0


class NotReady(RuntimeError):
    """A gateway process exited, or was not ready in time; the message names it and its log."""


def child_env(settings: Settings, *, carry_secrets: bool = False,
              base: Mapping[str, str] | None = None,
              extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The gateway's processes' environment: `base` (this one's) with where the servers, the
    data dir, the transport and the ingest are, and the flood limits, as `settings` has them.

    With `carry_secrets`, the bridge secret, the server's key and the API clients too: for
    settings built in code. `govsms run` leaves them out, so its children read the data dir's
    generated secrets (or the configured ones they inherit), not a copy in their environment.
    """
    env = {**(os.environ if base is None else base),
           "GOVSMS_REDIS_URL": settings.redis_url or "",
           "GOVSMS_DATABASE_URL": settings.database_url or "",
           "GOVSMS_DATABASE_TRANSACTION_POOLER":
               str(settings.database_transaction_pooler).lower(),
           "GOVSMS_DATA_DIR": str(settings.data_dir), "GOVSMS_TRANSPORT": settings.transport_url,
           "GOVSMS_HTTP_HOST": settings.http_host, "GOVSMS_HTTP_PORT": str(settings.http_port),
           "GOVSMS_CONSOLE_HOST": settings.console_host,
           "GOVSMS_CONSOLE_PORT": str(settings.console_port),
           "GOVSMS_FLOOD_LIMIT": str(settings.flood_limit),
           "GOVSMS_FLOOD_WINDOW_S": str(settings.flood_window_s),
           "GOVSMS_REPEAT_WINDOW_S": str(settings.repeat_window_s)}
    if settings.smpp_receiver:
        env["GOVSMS_SMPP_RECEIVER"] = settings.smpp_receiver
    else:
        env.pop("GOVSMS_SMPP_RECEIVER", None)
    if carry_secrets:
        env.update({"GOVSMS_BRIDGE_SECRET": settings.secret(), "GOVSMS_SECRET_KEY": settings.key(),
                    "GOVSMS_API_CLIENTS": json.dumps({
                        name: {**client.model_dump(exclude={"secret"}),
                               "secret": client.secret.get_secret_value()}
                        for name, client in settings.api_clients.items()})})
    return {**env, **(extra or {})}


def supervised(sup: Supervisor, logs: Path, env: dict[str, str]) -> Spawn:
    """Spawn under `sup`: each process restarted should it die, all stopped with it."""

    def spawn(name: str, argv: list[str]) -> Alive:
        return sup.start(Child(name, argv, logs / f"{name}.log", env)).alive

    return spawn


def start(settings: Settings, logs: Path, spawn: Spawn, *, only: Collection[str] | None = None,
          skip: Collection[str] = (), worker_ready_s: float = WORKER_READY_S,
          ingest_ready_s: float = INGEST_READY_S) -> dict[str, Alive]:
    """Spawn the processes `processes(settings)` lists, in its order (those named in `only`,
    none named in `skip`), and wait until they are ready; NotReady if one is not."""
    chosen = {name: argv for name, argv in processes(settings).items()
              if name not in skip and (only is None or name in only)}
    # A log may hold an earlier run's "ready.": only what is written from now on counts.
    marks = {name: _size(logs / f"{name}.log") for name in chosen}
    alive = {name: spawn(name, argv) for name, argv in chosen.items()}
    for name in alive:
        if name.startswith("worker-"):
            _until(lambda n=name: b"ready." in read_from(logs / f"{n}.log", marks[n]),
                   alive[name], worker_ready_s, name, logs)
    for name, url in (("ingest", settings.ingest_url), ("console", settings.console_url)):
        if name in alive:
            _until(lambda u=url: _answers(u), alive[name], ingest_ready_s, name, logs)
    return alive


def _until(ready: Callable[[], bool], alive: Alive, timeout_s: float, name: str,
           logs: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if not alive():
            raise NotReady(f"{name} exited; see {logs / name}.log")
        if time.monotonic() > deadline:
            raise NotReady(f"{name} not ready after {timeout_s:.0f} s; see {logs / name}.log")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_from(path: Path, offset: int) -> bytes:
    """What `path` holds from `offset` on (nothing while it does not exist yet)."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read()
    except FileNotFoundError:
        return b""
