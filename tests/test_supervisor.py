"""The supervisor of `govsms run`: restarts what dies, stops everything in reverse order."""

from __future__ import annotations

import signal
import sys
import time

from workers.supervisor import Child, Supervisor

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


def test_stop_goes_in_reverse_order_and_kills_what_ignores_its_signal(tmp_path):
    stubborn = [sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    sup = Supervisor()
    a = sup.start(Child("a", SLEEPER, tmp_path / "a.log"))
    b = sup.start(Child("b", stubborn, tmp_path / "b.log"))
    time.sleep(0.3)  # let b install its handler
    sup.stop(timeout_s=1)
    assert b.process.returncode == -signal.SIGKILL
    assert a.process.returncode == -signal.SIGTERM
