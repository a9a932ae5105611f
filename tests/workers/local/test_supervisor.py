"""The supervisor of `govsms run`: restarts what dies, stops everything at once, servers last."""

from __future__ import annotations

import signal
import sys
import time

from workers.local.supervisor import Child, Supervisor


def _on_sigterm(body: str) -> list[str]:
    """A child that runs `body` (Python, with `Path` and `time` imported) when SIGTERM comes."""
    code = ("import signal, sys, time\nfrom pathlib import Path\n"
            "def stop(*_):\n" + "".join(f"    {line}\n" for line in body.splitlines()) +
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\nPath(sys.argv[1]).touch()\ntime.sleep(60)\n")
    return [sys.executable, "-c", code]


def _started(*paths) -> None:
    deadline = time.monotonic() + 10
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.05)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_that_dies_is_restarted(tmp_path):
    sup = Supervisor()
    child = sup.start(Child("sleeper", SLEEPER, tmp_path / "s.log"))
    first_pid = child.process.pid
    child.process.kill()
    child.process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (child.alive() and child.process.pid != first_pid):
        sup.check()
        time.sleep(0.05)
    try:
        assert child.alive() and child.process.pid != first_pid and child.restarts == 1
    finally:
        sup.stop()
    assert not child.alive()


def test_stop_signals_every_child_before_waiting_for_any(tmp_path):
    # Each of a and b exits only once the other has been signalled: stopped one after the
    # other, the first would wait for a signal that never comes and be killed.
    def child(me: str, other: str) -> Child:
        body = (f"Path('{tmp_path}/{me}.signalled').touch()\n"
                f"while not Path('{tmp_path}/{other}.signalled').exists(): time.sleep(0.02)")
        return Child(me, [*_on_sigterm(body), str(tmp_path / f"{me}.up")], tmp_path / f"{me}.log")

    sup = Supervisor()
    a, b = sup.start(child("a", "b")), sup.start(child("b", "a"))
    _started(tmp_path / "a.up", tmp_path / "b.up")
    sup.stop(timeout_s=10)
    assert (a.process.returncode, b.process.returncode) == (0, 0)


def test_servers_stop_after_every_other_child_has_exited(tmp_path):
    worker_body = f"time.sleep(0.3)\nPath('{tmp_path}/worker.exited').touch()"
    server_body = (f"Path('{tmp_path}/server.saw').write_text("
                   f"str(Path('{tmp_path}/worker.exited').exists()))")
    sup = Supervisor()
    server = sup.start(Child("server", [*_on_sigterm(server_body), str(tmp_path / "s.up")],
                             tmp_path / "s.log", stop_last=True))
    worker = sup.start(Child("worker", [*_on_sigterm(worker_body), str(tmp_path / "w.up")],
                             tmp_path / "w.log"))
    _started(tmp_path / "s.up", tmp_path / "w.up")
    sup.stop(timeout_s=10)
    assert (tmp_path / "server.saw").read_text() == "True"
    assert (server.process.returncode, worker.process.returncode) == (0, 0)


def test_stop_kills_what_ignores_its_signal(tmp_path):
    stubborn = [sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    sup = Supervisor()
    a = sup.start(Child("a", SLEEPER, tmp_path / "a.log"))
    b = sup.start(Child("b", stubborn, tmp_path / "b.log"))
    time.sleep(0.3)  # let b install its handler
    sup.stop(timeout_s=1)
    assert b.process.returncode == -signal.SIGKILL
    assert a.process.returncode == -signal.SIGTERM
