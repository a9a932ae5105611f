"""`govsms run`: embedded Redis and PostgreSQL, the whole gateway, a clean stop, data kept."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from replies.sealing import Sealer
from tests.support.gateway import wait_for
from workers.cli.messages import SEALED_NOTE
from workers.local import embedded
from workers.local.embedded import free_port
from workers.settings import GENERATED_SECRETS

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
    return {**env, "GOVSMS_DATA_DIR": str(data_dir), "GOVSMS_HTTP_PORT": str(port),
            "GOVSMS_FLOWER_PORT": str(free_port()), "GOVSMS_CONSOLE_PORT": str(free_port()),
            **extra}


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
        assert started["redis_url"].startswith("redis://:")  # with its password
        assert started["database_url"].startswith("postgresql://govsms:")
        reply = first.send("hello")
        assert (reply.returncode, reply.stdout.strip()) == (0, NOT_FOUND)
        # The same text again within a minute is answered once: the command says why not.
        again = first.send("hello")
        assert again.returncode == 1 and "(suppressed: repeat)" in again.stderr
        # A reply with a password is sealed: the command says it was sent, not what it says.
        registered = first.send("TK,Nguyen Van An,123456789,01.02.1990", to="8188")
        assert (registered.returncode, registered.stdout.strip()) == (0, SEALED_NOTE)
        # ...and the outbox keeps it sealed; the server's key opens it.
        sealer = Sealer((data_dir / "secret_key").read_text().strip())
        sent = [json.loads(line) for line in (data_dir / "outbox.jsonl").read_text().splitlines()]
        assert "MK: " not in json.dumps(sent)
        assert any("MK: " in sealer.unseal(s["text"]) for s in sent if s["sealed"])
        # No reply in time: exit 1.
        silent = first.send("hi", wait=0.01)
        assert silent.returncode == 1 and "no reply" in silent.stderr
        # The console answers on its own port, behind its sign-in.
        console = f"http://127.0.0.1:{env['GOVSMS_CONSOLE_PORT']}"
        assert httpx.get(f"{console}/search").headers["location"] == "/signin"
        assert "operator add NAME" in (data_dir / "run-1.out").read_text()
    finally:
        assert first.stop() == 0
    assert not (data_dir / "runtime.json").exists()
    output = (data_dir / "run-1.out").read_text()
    for name in ("ingest", "worker-inbound", "worker-outbound", "beat", "console", "postgres",
                 "redis"):
        assert f"stopped {name}" in output

    second = Running(env, data_dir / "run-2.out")
    try:
        assert second.send("hello again").stdout.strip() == NOT_FOUND
    finally:
        assert second.stop() == 0
    sent = [json.loads(line) for line in (data_dir / "outbox.jsonl").read_text().splitlines()]
    # The ids go on from the first run: the message store survived the restart.
    assert [s["inbound_id"] for s in sent if s["text"] == NOT_FOUND] == [1, 4, 5]


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


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A folder like root's home in a container (0700): PostgreSQL's user cannot enter it."""
    tmp_path.chmod(0o700)
    yield tmp_path
    link = tmp_path / "clone" / ".govsms" / "pg"
    if link.is_symlink():
        subprocess.run(["rm", "-rf", str(link.resolve().parent)], check=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_in_a_home_folder_works_and_a_second_run_there_refuses(home):
    data_dir = home / "clone" / ".govsms"
    env = _env(data_dir, free_port())
    first = Running(env, home / "run-1.out")
    try:
        cluster = (data_dir / "pg").resolve()
        assert cluster.parent.parent == embedded.CLUSTERS
        assert f"PostgreSQL's cluster is in {cluster}" in (home / "run-1.out").read_text()
        assert first.send("hello").stdout.strip() == NOT_FOUND
        for name in ("runtime.json", *GENERATED_SECRETS, *embedded.PASSWORD_FILES):
            assert _mode(data_dir / name) == 0o600, name
        runtime = (data_dir / "runtime.json").read_bytes()

        second = subprocess.run([*GOVSMS, "run"], env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert second.returncode == 1
        assert second.stderr.strip() == (f"Error: govsms is already running in {data_dir}, "
                                         f"pid {first.process.pid}")
        assert (data_dir / "runtime.json").read_bytes() == runtime
        assert first.send("hello again").stdout.strip() == NOT_FOUND
    finally:
        assert first.stop() == 0
