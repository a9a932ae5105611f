"""Fault-suite fixtures: servers the test may kill, stall or flush, and a gateway on them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, gateway_settings
from tests.support.keys import SECRET
from tests.support.servers import Server
from workers.local import embedded
from workers.local.gateway import processes
from workers.local.supervisor import Child, Supervisor


@pytest.fixture
def redis_server_own(own_servers: Path, tmp_path: Path) -> Iterator[Server]:
    """A Redis with AOF on, of this test alone."""
    folder = tmp_path / "redis"
    server = Server(embedded.redis_spec(folder), tmp_path / "redis.log").start()
    yield server
    server.stop()


@pytest.fixture
def gateway_on(database_url: str, tmp_path: Path, conn) -> Iterator[Callable[..., Gateway]]:
    """Start a gateway on a given Redis URL, with settings overridden; stopped after the test."""
    started: list[Gateway] = []

    supervisors: list[Supervisor] = []
    stop = threading.Event()

    def start(redis_url: str, *, beat: bool = False, database: str | None = None,
              transport: str | None = None, **env: str) -> Gateway:
        settings = gateway_settings(database or database_url, redis_url, tmp_path, SECRET)
        updates = {k.removeprefix("GOVSMS_").lower(): v for k, v in env.items()}
        settings = settings.model_copy(update={**updates, **({"transport": transport}
                                                             if transport else {})})
        gw = Gateway(settings, tmp_path, env_extra=env).start()
        if beat:
            # Supervised as `govsms run` does, should beat exit all the same.
            sup = Supervisor()
            sup.start(Child("beat", processes(settings)["beat"], tmp_path / "beat.log", gw.env))
            supervisors.append(sup)
            threading.Thread(target=_watch, args=(sup, stop), daemon=True).start()
        started.append(gw)
        return gw

    yield start
    stop.set()
    for sup in supervisors:
        sup.stop()
    for gw in started:
        gw.stop()


def _watch(sup: Supervisor, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        sup.check()
