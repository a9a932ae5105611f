"""What `govsms run` checks before it starts anything: one instance per data dir, free
ports; and what its banner tells to try."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workers.local import run as run_module
from workers.local.embedded import free_port
from workers.settings import Settings

GOVSMS = [sys.executable, "-m", "workers.cli"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")}
    return {**env, "GOVSMS_DATA_DIR": str(data_dir), "GOVSMS_HTTP_PORT": str(free_port()),
            "GOVSMS_FLOWER_PORT": str(free_port()), "GOVSMS_CONSOLE_PORT": str(free_port()),
            **extra}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    # Today's code would start the whole gateway here: the timeout turns that into a failure.
    return subprocess.run([*GOVSMS, "run"], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("setting", ["GOVSMS_HTTP_PORT", "GOVSMS_FLOWER_PORT",
                                     "GOVSMS_CONSOLE_PORT"])
def test_a_port_in_use_stops_the_start_in_one_line_naming_its_setting(tmp_path, setting):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _run(_env(tmp_path / ".govsms", **{setting: str(port)}))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and setting in lines[0], done.stderr
    assert "govsms is running" not in done.stdout
    assert sorted(p.name for p in (tmp_path / ".govsms").iterdir()) == ["govsms.lock"]


def test_a_second_instance_in_the_same_data_dir_refuses_and_touches_nothing(tmp_path):
    data_dir = tmp_path / ".govsms"
    data_dir.mkdir()
    (data_dir / "runtime.json").write_text('{"pid": 4242}')
    with open(data_dir / run_module.LOCK_FILE, "w") as held:  # the running instance's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        done = _run(_env(data_dir))
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: govsms is already running in {data_dir}, pid 4242"
    assert (data_dir / "runtime.json").read_text() == '{"pid": 4242}'
    assert sorted(p.name for p in data_dir.iterdir()) == ["govsms.lock", "runtime.json"]


def test_the_banner_says_how_to_call_govsms_from_here(tmp_path, monkeypatch, capsys):
    script = tmp_path / "venv" / "bin" / "govsms"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    settings = Settings(data_dir=tmp_path, transport="file:///dev/null")
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    run_module._print_banner(settings, "redis://x", "postgresql://x", tmp_path)
    assert f"Try:  {script} send --from" in capsys.readouterr().out
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    run_module._print_banner(settings, "redis://x", "postgresql://x", tmp_path)
    assert "Try:  govsms send --from" in capsys.readouterr().out
    run_module._print_banner(settings, "redis://x", "postgresql://x", tmp_path,
                             has_operators=False)
    assert "no operator yet: govsms operator add NAME" in capsys.readouterr().out
