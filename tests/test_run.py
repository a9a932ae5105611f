"""`govsms run`: embedded Redis and PostgreSQL, the whole gateway, a clean stop, data kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import wait_for
from workers.cli import SEALED_NOTE
from workers.embedded import free_port

pytestmark = pytest.mark.e2e

NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."
GOVSMS = [sys.executable, "-m", "workers.cli"]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp: PostgreSQL runs unprivileged and must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="govsms-run-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")}
    return {**env, "GOVSMS_DATA_DIR": str(data_dir), "GOVSMS_HTTP_PORT": str(port), **extra}


class Running:
    """A `govsms run` process, its output in a file."""

    def __init__(self, env: dict[str, str], out: Path) -> None:
        self.env, self.out = env, out
        self.process = subprocess.Popen([*GOVSMS, "run"], env=env, stdout=out.open("ab"),
                                        stderr=subprocess.STDOUT)
        wait_for(lambda: "govsms is running" in out.read_text() or self.process.poll() is not None,
                 90, "govsms run to start")
        assert self.process.poll() is None, out.read_text()

    def send(self, text: str, wait: float = 20.0, to: str = "1414") -> subprocess.CompletedProcess:
        return subprocess.run([*GOVSMS, "send", "--from", "+77011234567", "--to", to,
                               "--wait", str(wait), text], env=self.env, capture_output=True,
                              text=True, timeout=wait + 20, check=False)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def test_run_starts_everything_embedded_stops_cleanly_and_keeps_data(data_dir):
    env = _env(data_dir, free_port())
    first = Running(env, data_dir / "run-1.out")
    try:
        started = json.loads((data_dir / "runtime.json").read_text())
        assert started["redis_url"].startswith("redis://127.0.0.1:")
        assert started["database_url"].startswith("postgresql://")
        reply = first.send("hello")
        assert (reply.returncode, reply.stdout.strip()) == (0, NOT_FOUND)
        # A reply with a password is sealed: the command says it was sent, not what it says.
        registered = first.send("TK,Nguyen Van An,123456789,01.02.1990", to="8188")
        assert (registered.returncode, registered.stdout.strip()) == (0, SEALED_NOTE)
        assert "MK: " in (data_dir / "outbox.jsonl").read_text()
        # No reply in time: exit 1.
        silent = first.send("hello", wait=0.01)
        assert silent.returncode == 1 and "no reply" in silent.stderr
    finally:
        assert first.stop() == 0
    assert not (data_dir / "runtime.json").exists()
    output = (data_dir / "run-1.out").read_text()
    for name in ("ingest", "worker-inbound", "worker-outbound", "beat", "postgres", "redis"):
        assert f"stopped {name}" in output

    second = Running(env, data_dir / "run-2.out")
    try:
        assert second.send("hello again").stdout.strip() == NOT_FOUND
    finally:
        assert second.stop() == 0
    sent = [json.loads(line) for line in (data_dir / "outbox.jsonl").read_text().splitlines()]
    # The ids go on from the first run: the message store survived the restart.
    assert [s["inbound_id"] for s in sent if s["text"] == NOT_FOUND] == [1, 3, 4]


def test_run_with_configured_servers_starts_none(data_dir, database_url, redis_url):
    env = _env(data_dir, free_port(), GOVSMS_DATABASE_URL=database_url,
               GOVSMS_REDIS_URL=redis_url)
    running = Running(env, data_dir / "run.out")
    try:
        assert running.send("hello").stdout.strip() == NOT_FOUND
    finally:
        assert running.stop() == 0
    output = (data_dir / "run.out").read_text()
    assert "started redis" not in output and "started postgres" not in output
    assert not (data_dir / "pg").exists() and not (data_dir / "redis").exists()
