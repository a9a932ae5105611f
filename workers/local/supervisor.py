"""A small process supervisor: start children, restart the ones that die, stop them all at once."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
MAX_RESTART_DELAY_S = 30.0


def _die_with_parent() -> None:
    # If the supervisor is killed outright, its children get SIGTERM instead of living on.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass(slots=True)
class Child:
    """One supervised process."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    user: int | None = None
    group: int | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    # Servers (Redis, PostgreSQL) stop after the rest: a worker's warm shutdown still needs them.
    stop_last: bool = False
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        """Start the process, its output appended to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                list(self.argv), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                # The supervisor starts children from its one thread: preexec_fn is safe here.
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
                user=self.user, group=self.group,
                extra_groups=None if self.user is None else [], cwd=os.getcwd() if self.user is None else "/")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None


@dataclass(slots=True)
class Supervisor:
    """Children started in order, stopped in reverse order."""

    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def start(self, child: Child) -> Child:
        """Start `child` and supervise it from now on."""
        child.start()
        self.children.append(child)
        log.info("started %s (pid %s), log %s", child.name, child.process.pid, child.log_path)
        return child

    def check(self) -> None:
        """Restart any child that died, with a growing delay between restarts."""
        now = time.monotonic()
        for child in self.children:
            if child.alive() or self.stopping:
                continue
            if child.next_start == 0.0:
                code = child.process.returncode if child.process else None
                delay = min(2.0 ** child.restarts, MAX_RESTART_DELAY_S)
                log.error("%s exited with %s; restarting in %.0f s", child.name, code, delay)
                child.next_start = now + delay
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
                log.info("restarted %s (pid %s)", child.name, child.process.pid)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop every child: all at once, then the `stop_last` ones; kill what overstays."""
        self.stopping = True
        first = [child for child in reversed(self.children) if not child.stop_last]
        last = [child for child in reversed(self.children) if child.stop_last]
        for group in (first, last):
            _stop_together(group, timeout_s)


def _stop_together(children: list[Child], timeout_s: float) -> None:
    """Signal every child, then wait for them together: as long as the slowest, not the sum."""
    running = [child for child in children if child.alive()]
    for child in running:
        child.process.send_signal(child.stop_signal)
    deadline = time.monotonic() + timeout_s
    for child in running:
        try:
            child.process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", child.name, timeout_s)
            child.process.kill()
            child.process.wait()
        log.info("stopped %s", child.name)
