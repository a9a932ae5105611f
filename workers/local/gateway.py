"""The gateway's processes, and how every harness starts them: `govsms run`, the bench and the
end-to-end tests."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from workers import replay
from workers.local import embedded
from workers.local.supervisor import Child, Supervisor
from workers.queues import BULK, INBOUND, OUTBOUND, all_queues
from workers.settings import Settings


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


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


def start_server(sup: Supervisor, spec: embedded.ServerSpec, logs: Path) -> Child:
    """Start an embedded server under `sup`, stopped after every other child; wait until ready."""
    child = sup.start(Child(spec.name, spec.argv, logs / f"{spec.name}.log", user=spec.user,
                            group=spec.group, stop_signal=signal.SIGINT
                            if spec.name == "postgres" else signal.SIGTERM, stop_last=True))
    embedded.wait_ready(spec, child.alive)
    return child
