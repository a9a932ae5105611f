"""Kannel in `make bench`: Debian's Kannel on its own, then the gateway driven through it.

Each measurement runs bearerbox and smsbox under a `Supervisor` (as bench/gateway.py runs the
gateway) on free ports in a folder of their own, with Kannel's test SMSC, fakesmsc, as the
phones: it writes MOs to bearerbox's `smsc = fake` link and logs every MT it gets
(`Got message N: <...>`, N counting from 1), which is where the replies are counted.

1. **The ceiling** (`measure_ceiling`): Kannel alone, a static-text sms-service
   (`text = "ok"`: smsbox answers each MO itself, no HTTP). fakesmsc writes a fixed number of
   MOs at full speed (`-i 0 -m N`), N sized from a short probe so that Kannel still has MOs
   waiting when the window ends: the replies per second counted at fakesmsc over a steady
   window after a warm-up is Kannel's rate flat out. fakesmsc cannot pace thousands a
   second (between two sends it polls with a timeout rounded to 0 ms: a core of its own), so
   it writes them all at once and Kannel works through its queue. CPU is that of bearerbox,
   smsbox and fakesmsc (/proc/<pid>/stat, `bench.cpu`) from the first MO written to the last
   reply received, per reply: every MO read and every reply written is in it.
2. **Through Kannel** (`measure_through_kannel`): a second start of the gateway
   (`bench.gateway.gateway`, the same demo data) whose outbound transport is smsbox's
   sendsms with a dlr-url to the ingest's `/sms/dlr`, and Kannel configured with
   deploy/kannel/smsbox.conf itself (catch-all get-url to `/sms/inbound` with the token,
   http-request-retry, mo-recode, the sendsms-user...; only ports, the ingest's address,
   the token, the password and the log files put in). fakesmsc writes the bench's traffic
   (`bench.loadgen.Traffic`) at a fixed rate (`-i 1/rate -m N`):
   - `steady`: first at the rate the gateway sustained with the file transport. A rate
     holds when the replies counted at fakesmsc over the window keep pace (>= 95% of the
     MOs written) and the MOs without their reply grow by less than a second of traffic.
     A rate that clearly does not hold (more than ABORT_BACKLOG_S of its traffic waiting
     for replies) is stopped early, a second fakesmsc taking the replies still to come, so
     little piles up to drain; the next rate is STEP_DOWN of it, or 95% of the replies seen
     if that is more. The first rate that holds (else the last reply rate) is
     `kannel_e2e_msgs_per_s`.
   - `burst`: 3x that rate for 60 s; Kannel retries what the gateway refuses (503, more
     waiting than the SLA allows) as smsbox.conf says, and holds the rest in its queue. The
     share of the MOs the gateway accepted that were answered within the SLA of receipt is
     `kannel_burst_sla_ok_ratio`; MOs Kannel still hands over more than `burst_feed_cap`
     after the last was written are not counted (they are reported as not accepted).
   Each phase restarts bearerbox with its own `smsc-id`, which Kannel hands the ingest as
   `smsc` (the inbound `source`): PostgreSQL's rows of a phase are found by it, as the other
   phases' by their tag.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from bench import cpu
from bench.gateway import System, gateway
from bench.loadgen import Traffic
from bench.phases import stats
from workers.local.embedded import free_port
from workers.local.supervisor import Child, Supervisor
from workers.messages import reports
from workers.settings import Settings

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
DEPLOYED = Path(__file__).resolve().parents[1] / "deploy" / "kannel" / "smsbox.conf"

FIGURES = ("kannel_ceiling_msgs_per_s", "kannel_cpu_ms_per_msg", "kannel_e2e_msgs_per_s",
           "kannel_burst_sla_ok_ratio")
BURST_FACTOR = 3.0
BURST_S = 60.0  # as long as the SLA, as the file transport's burst
PROBE_MOS = 5000  # the ceiling's probe: enough for a rate, done in about half a second
MO_LINES = 2000  # distinct MOs handed to fakesmsc, which picks one at random for each send
KANNEL_PROCESSES = ("bearerbox", "smsbox", "fakesmsc")


def missing() -> str | None:
    """Why Kannel cannot run here, or None when it can."""
    absent = [p for p in (BEARERBOX, SMSBOX, FAKESMSC) if not Path(p).exists()]
    if absent:
        return (f"Kannel is not installed ({', '.join(absent)} missing): `make bench` installs "
                "Debian's kannel and kannel-extras through deploy/ensure-peers")
    return None


# ------------------------------------------------------------------------------ configuration

@dataclass(frozen=True)
class Ports:
    """Kannel's ports: bearerbox's admin, box and fake-SMSC ports and smsbox's sendsms."""

    admin: int
    smsbox: int
    fake: int
    sendsms: int

    @classmethod
    def free(cls, sendsms: int | None = None) -> Ports:
        """Four distinct ports nothing listens on now (`sendsms` kept when given)."""
        found: list[int] = [] if sendsms is None else [sendsms]
        while len(found) < 4:
            port = free_port()
            if port not in found:
                found.append(port)
        if sendsms is not None:
            found.append(found.pop(0))
        return cls(*found)

    def redraw(self, *, keep_sendsms: bool) -> Ports:
        """Other free ports, for a start that found one taken meanwhile."""
        return Ports.free(self.sendsms if keep_sendsms else None)


_CORE = """\
group = core
admin-port = {admin}
admin-password = {admin_password}
smsbox-port = {smsbox}
box-allow-ip = "127.0.0.1"
log-file = "{folder}/bearerbox.log"
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = {smsc_id}
port = {fake}
connect-allow-ip = "127.0.0.1"

"""

_STATIC = """\
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
log-file = "{folder}/smsbox.log"
log-level = 1

group = sms-service
keyword = default
catch-all = true
text = "ok"
"""


def core(folder: Path, ports: Ports, smsc_id: str) -> str:
    """bearerbox's groups: the core on `ports` and one fake SMSC link named `smsc_id`."""
    return _CORE.format(admin=ports.admin, admin_password=secrets.token_hex(8),
                        smsbox=ports.smsbox, folder=folder, smsc_id=smsc_id, fake=ports.fake)


def static_config(folder: Path, ports: Ports) -> str:
    """Kannel on its own: every MO answered `ok` by smsbox itself."""
    return core(folder, ports, "ceiling") + _STATIC.format(smsbox=ports.smsbox,
                                                          sendsms=ports.sendsms, folder=folder)


_SETTING = re.compile(r"^\s*([a-z-]+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Deployed:
    """deploy/kannel/smsbox.conf, as groups of settings in their order."""

    groups: list[tuple[str, list[tuple[str, str]]]]

    @classmethod
    def read(cls, path: Path = DEPLOYED) -> Deployed:
        groups: list[tuple[str, list[tuple[str, str]]]] = []
        current: list[tuple[str, str]] | None = None
        for line in path.read_text().splitlines():
            if not line.strip():
                current = None  # a blank line ends a group
                continue
            found = _SETTING.match(line)
            if line.lstrip().startswith("#") or not found:
                continue
            key, value = found.groups()
            if key == "group":
                current = []
                groups.append((value, current))
            elif current is not None:
                current.append((key, value))
        return cls(groups)

    def get(self, group: str, key: str, default: str | None = None) -> str | None:
        for name, settings in self.groups:
            if name == group:
                for k, v in settings:
                    if k == key:
                        return v.strip('"')
        return default

    def config(self, folder: Path, ports: Ports, *, smsc_id: str, ingest: str, token: str,
               password: str) -> str:
        """kannel.conf: bearerbox's groups, then the deployed groups with this run's ports,
        the ingest's address and token, the sendsms password and log files put in."""
        deployed_ingest = "http://127.0.0.1:8080"
        set_ = {"smsbox": {"bearerbox-host": "127.0.0.1", "bearerbox-port": str(ports.smsbox),
                           "sendsms-port": str(ports.sendsms),
                           "log-file": f'"{folder}/smsbox.log"', "log-level": "1"},
                "sendsms-user": {"password": password}}
        out = [core(folder, ports, smsc_id)]
        for name, settings in self.groups:
            changes = dict(set_.get(name, {}))
            lines = [f"group = {name}"]
            for key, value in settings:
                if key in changes:
                    value = changes.pop(key)
                elif key == "get-url":
                    if deployed_ingest not in value or "token=TOKEN" not in value:
                        raise ValueError(f"{DEPLOYED}: get-url no longer names {deployed_ingest}"
                                         " and token=TOKEN; the bench cannot point it here")
                    value = value.replace(deployed_ingest, ingest).replace(
                        "token=TOKEN", f"token={token}")
                lines.append(f"{key} = {value}")
            lines.extend(f"{key} = {value}" for key, value in changes.items())
            out.append("\n".join(lines) + "\n\n")
        return "".join(out)


# ---------------------------------------------------------------------- the processes

@dataclass
class Phone:
    """One fakesmsc run: its MOs written and the MTs it got, read from its log as it grows."""

    child: Child
    log_path: Path
    count: int
    started: float
    offset: int = 0
    rest: bytes = b""
    sent: int = 0
    got: int = 0       # SMS received, each part of a concatenated reply counted
    partial: int = 0   # of those, parts that are not the last of their reply
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (at, sent, replies)

    @property
    def replies(self) -> int:
        """Whole replies received: SMS without a concatenation header, and last parts."""
        return self.got - self.partial

    def read(self) -> tuple[float, int, int]:
        """Read what fakesmsc logged since the last call: (now, MOs written, replies got)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        at = time.time()
        self.offset += len(chunk)
        data = self.rest + chunk
        cut = data.rfind(b"\n") + 1
        lines, self.rest = data[:cut], data[cut:]
        self.sent = max(self.sent, _last_number(lines, b"sent message "))
        self.got = max(self.got, _last_number(lines, b"Got message "))
        if b" udh " in lines:
            self.partial += sum(1 for line in lines.splitlines() if _partial(line))
        sample = (at, self.sent, self.replies)
        self.samples.append(sample)
        return sample

    def stop(self) -> None:
        """SIGINT: fakesmsc logs its totals and exits."""
        process = self.child.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # it must not outlive the bench
                process.kill()
                process.wait()


def _last_number(lines: bytes, marker: bytes) -> int:
    """N of the last `marker`N line (`sent message N`, `Got message N: <...>`); not the
    totals fakesmsc logs when it stops (`from first to last sent message 2.4 s`)."""
    end = len(lines)
    while (at := lines.rfind(marker, 0, end)) >= 0:
        found = re.match(rb"(\d+)[:\n]", lines[at + len(marker):at + len(marker) + 24])
        if found:
            return int(found[1])
        end = at
    return 0


def _partial(line: bytes) -> bool:
    """Whether an MT line is a part of a concatenated SMS but its last one."""
    at = line.find(b"Got message ")
    if at < 0:
        return False
    words = line[line.find(b"<", at) + 1:].split(b" ", 4)
    if len(words) < 4 or words[2] != b"udh":
        return False
    udh = unquote_to_bytes(words[3].decode("ascii", "replace"))
    i = 1
    while i + 1 < len(udh):  # the information elements after the UDH length
        iei, size = udh[i], udh[i + 1]
        element = udh[i + 2:i + 2 + size]
        if iei == 0 and size == 3:      # concatenation, 8-bit reference
            return element[2] < element[1]
        if iei == 8 and size == 4:      # concatenation, 16-bit reference
            return element[3] < element[2]
        i += 2 + size
    return False


def mo_lines(traffic: Traffic, count: int) -> list[str]:
    """`count` MOs of the bench's traffic as fakesmsc writes them: `text` when ASCII, else
    UCS-2 percent-encoded (what a handset sends for Cyrillic); empty texts left out."""
    lines: list[str] = []
    for _ in range(count * 3):
        if len(lines) >= count:
            break
        sender, shortcode, text, _ = traffic.next()
        if not text.strip() or "\n" in text:
            continue
        if text.isascii():
            lines.append(f"{sender} {shortcode} text {text}")
        else:
            lines.append(f"{sender} {shortcode} ucs2 "
                         f"{quote_from_bytes(text.encode('utf-16-be'), safe='')}")
    return lines


@dataclass
class Boxes:
    """bearerbox and smsbox running, and the fakesmsc runs started against them."""

    folder: Path
    ports: Ports
    supervisor: Supervisor
    roots: dict[str, int]

    def phone(self, name: str, lines: list[str], *, count: int,
              rate: float | None = None) -> Phone:
        """Start fakesmsc writing `count` of `lines` (at random) at `rate` a second (None: at
        full speed); return once bearerbox has its connection."""
        interval = 0.0 if rate is None else 1.0 / rate
        log_path = self.folder / f"fakesmsc-{name}.log"
        bearerbox_log = self.folder / "bearerbox.log"
        mark = bearerbox_log.stat().st_size if bearerbox_log.exists() else 0
        argv = [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.ports.fake), "-i", f"{interval:.6f}",
                "-m", str(count), "-v", "0", *lines]
        started = time.time()
        child = self.supervisor.start(Child(f"fakesmsc-{name}", argv, log_path,
                                            stop_signal=signal.SIGINT))
        self.roots["fakesmsc"] = child.process.pid
        _until(lambda: b"Fakesmsc client connected" in _read_from(bearerbox_log, mark),
               child.alive, 20, "fakesmsc's connection", log_path)
        return Phone(child, log_path, count, started)


@contextmanager
def boxes(folder: Path, config: Callable[[Ports], str], ports: Ports, *,
          keep_sendsms: bool = False) -> Iterator[Boxes]:
    """bearerbox and smsbox with `config(ports)` (written to `folder`/kannel.conf), stopped on
    exit. A port found taken between choosing it and binding it (another process's outgoing
    connection) gets the boxes started again on others, `ports.sendsms` kept if asked.

    Their console logs only panics (`-v 4`, as Debian's init script starts them); their log
    files take info and above."""
    for attempt in range(3):
        try:
            running = _start(folder, config(ports), ports)
            break
        except _PortTaken:
            if attempt == 2:
                raise
            ports = ports.redraw(keep_sendsms=keep_sendsms)
    try:
        yield running
    finally:
        running.supervisor.stop(timeout_s=15)


class _PortTaken(RuntimeError):
    """A box could not bind its port."""


def _start(folder: Path, config: str, ports: Ports) -> Boxes:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.log"):  # a start again on other ports logs afresh
        old.unlink()
    path = folder / "kannel.conf"
    path.touch(mode=0o600)  # the bridge token and the sendsms password are in it
    path.write_text(config)
    supervisor = Supervisor()
    roots: dict[str, int] = {}
    try:
        for name, binary, port in (("bearerbox", BEARERBOX, ports.admin),
                                   ("smsbox", SMSBOX, ports.sendsms)):
            child = supervisor.start(Child(name, [binary, "-v", "4", str(path)],
                                           folder / f"{name}.console.log"))
            roots[name] = child.process.pid
            try:
                _until(lambda p=port: _listens(p), child.alive, 20, f"{name} on port {port}",
                       folder / f"{name}.log")
            except RuntimeError as error:
                if b"Address already in use" in _read_from(folder / f"{name}.log", 0):
                    raise _PortTaken(str(error)) from None
                raise
        _until(lambda: b"Client connected from" in _read_from(folder / "bearerbox.log", 0),
               supervisor.children[0].alive, 20, "smsbox's connection to bearerbox",
               folder / "bearerbox.log")
    except BaseException:
        supervisor.stop(timeout_s=15)
        raise
    return Boxes(folder, ports, supervisor, roots)


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _until(check: Callable[[], bool], alive: Callable[[], bool], timeout_s: float, what: str,
           log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if not alive():
            raise RuntimeError(f"bench: Kannel exited waiting for {what}; see {log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: timed out waiting for {what}; see {log_path}")
        time.sleep(0.05)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


def _cpu_seconds(a: cpu.CpuSnapshot, b: cpu.CpuSnapshot, names: tuple[str, ...]) -> float:
    return sum(b.groups.get(n, 0.0) - a.groups.get(n, 0.0) for n in names if n in a.groups)


@contextmanager
def _folder(prefix: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if not os.environ.get("GOVSMS_BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- the ceiling

def ceiling_durations(seconds: float) -> dict[str, float]:
    """The ceiling's warm-up and window for `seconds` (5: 1.25 s and 10 s)."""
    return {"warmup": min(max(seconds / 4, 0.5), 2.0), "window": max(2 * seconds, 1.0)}


def measure_ceiling(seconds: float, *, log: Any = print) -> dict[str, Any]:
    """Kannel on its own flat out: figures and details (see the module's docstring).

    N is sized from the probe's rate; should Kannel then run so much faster that its queue
    empties before the window is half over (the probe caught a slow moment), the run is made
    once more with N from the rate it had."""
    d = ceiling_durations(seconds)
    lines = mo_lines(Traffic(seed=4242, persons=300), 500)
    runs: list[dict[str, Any]] = []
    with _folder("govsms-bench-kannel-") as folder:
        with boxes(folder, lambda ports: static_config(folder, ports), Ports.free()) as k:
            probe = k.phone("probe", lines, count=PROBE_MOS)
            while probe.read()[2] < PROBE_MOS:
                if time.time() - probe.started > 30:
                    raise RuntimeError(f"bench: Kannel answered {probe.replies} of {PROBE_MOS} "
                                       f"probe MOs in 30 s; see {folder}")
                time.sleep(0.02)
            probe.stop()
            probe_rate = _steady_rate(probe.samples, PROBE_MOS)
            estimate = probe_rate
            for attempt in range(2):
                count = math.ceil(estimate * (d["warmup"] + d["window"]) * 1.15)
                run = _flat_out(k, lines, count, d, f"ceiling{attempt + 1}")
                runs.append(run)
                if run["unreliable"] is None or not run["drained"] or attempt:
                    break
                estimate = max(2 * estimate, run["mos"] / max(run["drain_s"], 1e-3))
    run = runs[-1]
    reliable = run["unreliable"] is None
    log(f"  Kannel alone (static text, fakesmsc at full speed): {run['rate']:,.0f} replies/s "
        f"over {run['window_s']:.1f} s, {run['cpu_ms']:.3f} ms of CPU each"
        f"{'' if reliable else ' (not reliable: ' + run['unreliable'] + ')'}")
    return {
        "figures": {
            "kannel_ceiling_msgs_per_s": round(run["rate"]) if reliable else None,
            "kannel_cpu_ms_per_msg": round(run["cpu_ms"], 4) if reliable else None,
        },
        "details": {"durations_s": d, "probe_mos": PROBE_MOS,
                    "probe_replies_per_s": round(probe_rate), "runs": len(runs),
                    **{k: v for k, v in run.items() if k not in ("rate", "cpu_ms")}},
    }


def _flat_out(k: Boxes, lines: list[str], count: int, d: dict[str, float],
              name: str) -> dict[str, Any]:
    """One fakesmsc run of `count` MOs at full speed: the window's replies and the whole run's
    CPU per reply."""
    phone = k.phone(name, lines, count=count)
    start = cpu.trees(k.roots)
    start.groups["fakesmsc"] = 0.0  # a new process: all its CPU is this run's
    while time.time() < phone.started + d["warmup"]:
        phone.read()  # as it writes: when it had written them all
        time.sleep(0.05)
    first = phone.read()
    at_start = cpu.trees(k.roots)
    end_at = phone.started + d["warmup"] + d["window"]
    last = first
    while time.time() < end_at:  # the window ends early should Kannel near the end
        time.sleep(0.1)
        last = phone.read()
        if last[2] >= 0.97 * count:
            break
    at_end = cpu.trees(k.roots)
    while phone.read()[2] < count and time.time() < end_at + max(d["window"], 10):
        time.sleep(0.05)
    done = cpu.trees(k.roots)
    drain_s = time.time() - phone.started
    phone.stop()
    replies_at_end = phone.replies
    window = last[0] - first[0]
    replies = last[2] - first[2]
    drained = replies_at_end >= count
    used = _cpu_seconds(start, done, KANNEL_PROCESSES)
    backlog = last[1] - last[2]
    unreliable = ("no reply in the window" if replies <= 0 else
                  "Kannel had no MO left waiting at the window's end (the figure would be low)"
                  if backlog <= 0 else
                  "Kannel's queue emptied before half the window" if window < d["window"] / 2
                  else "not every MO was answered" if not drained else None)
    return {
        "rate": replies / window if window > 0 else 0.0,
        "cpu_ms": used * 1000 / max(replies_at_end, 1),
        "mos": count, "replies": replies_at_end, "drained": drained,
        "drain_s": round(drain_s, 2), "window_s": round(window, 2),
        "replies_in_window": replies, "waiting_at_window_end": backlog,
        "mos_written_per_s": round(_write_rate(phone.samples, count)),
        "cpu_ms_per_reply_by_process": {
            n: round((done.groups.get(n, 0.0) - start.groups.get(n, 0.0)) * 1000
                     / max(replies_at_end, 1), 4) for n in KANNEL_PROCESSES},
        "cpu_in_window": cpu.cpu_between(at_start, at_end),
        "unreliable": unreliable,
    }


def _steady_rate(samples: list[tuple[float, int, int]], count: int) -> float:
    """Replies per second between 20% and 90% of `count` answered (the probe's steady part)."""
    low = next((s for s in samples if s[2] >= 0.2 * count), samples[0])
    high = next((s for s in samples if s[2] >= 0.9 * count), samples[-1])
    span = high[0] - low[0]
    if span <= 0 or high[2] <= low[2]:
        span, low = samples[-1][0] - samples[0][0], samples[0]
    return max((high[2] - low[2]) / max(span, 1e-3), 1.0)


def _write_rate(samples: list[tuple[float, int, int]], count: int) -> float:
    """How fast fakesmsc wrote its MOs: all `count` over the time to the first sample with
    them all (an upper bound on the time it took)."""
    done = next((s for s in samples if s[1] >= count), None)
    if done is None or len(samples) < 2:
        return 0.0
    return count / max(done[0] - samples[0][0] + 0.1, 1e-3)


# ------------------------------------------------------------------------- through Kannel

def through_durations(seconds: float) -> dict[str, float]:
    """The through-Kannel phases' lengths for `seconds` (5: warm-up 5 s, window 10 s, a 60 s
    burst after which Kannel may hand MOs over for 20 s more; shorter only for tiny runs)."""
    return {"warmup": max(seconds, 1.0), "window": max(2 * seconds, 1.0),
            "burst": min(BURST_S, max(12 * seconds, 3.0)),
            "burst_feed_cap": min(BURST_S / 3, max(4 * seconds, 3.0)), "drain_cap": 90.0}


STEPS = 5  # steady rates tried at most
STEP_DOWN = 0.7  # the next rate after one that did not hold, unless its replies said more
ABORT_BACKLOG_S = 1.5  # a steady step stops once this much of its traffic waits for replies

Sample = tuple[float, int, int]  # (at, MOs written, replies received) at fakesmsc


@dataclass
class Step:
    """One fakesmsc run against the gateway through Kannel, and what was seen of it."""

    name: str
    source: str
    rate: float
    count: int
    warmup: float
    window: float
    sender: Phone | None = None
    # A step stopped early: fakesmsc writing no more, taking the replies still to come.
    receiver: Phone | None = None
    first: Sample = (0.0, 0, 0)
    last: Sample = (0.0, 0, 0)
    cpu: dict[str, Any] | None = None
    aborted: bool = False
    drained: bool = False
    drained_s: float = 0.0
    burst: bool = False
    cut_at: float | None = None  # the burst: MOs received after this are not counted
    smsbox: dict[str, int] = field(default_factory=dict)
    integrity: dict[str, Any] = field(default_factory=dict)

    def read(self) -> Sample:
        """Read both fakesmsc logs: (now, MOs written, replies received)."""
        assert self.sender is not None
        _, sent, replies = self.sender.read()
        if self.receiver is not None:
            replies += self.receiver.read()[2]
        return time.time(), sent, replies

    @property
    def replies(self) -> int:
        return sum(p.replies for p in (self.sender, self.receiver) if p is not None)

    def replies_per_s(self) -> float:
        span = self.last[0] - self.first[0]
        return (self.last[2] - self.first[2]) / span if span > 0 else 0.0

    def written_per_s(self) -> float:
        span = self.last[0] - self.first[0]
        return (self.last[1] - self.first[1]) / span if span > 0 else 0.0

    def backlog_growth(self) -> int:
        """MOs written without their reply at fakesmsc: at the window's end less its start."""
        return (self.last[1] - self.last[2]) - (self.first[1] - self.first[2])


class Through:
    """The gateway through Kannel: the phases against one running `System`."""

    def __init__(self, system: System, folder: Path, ports: Ports, deployed: Deployed,
                 password: str, *, persons: int, log: Any) -> None:
        self.system = system
        self.folder = folder
        self.ports = ports
        self.deployed = deployed
        self.password = password
        self.log = log
        self.tag = f"bench-{uuid.uuid4().hex[:8]}-kannel"
        self.lines = mo_lines(Traffic(seed=2828, persons=persons), MO_LINES)
        self.steps: list[Step] = []
        retry = float(deployed.get("smsbox", "http-queue-delay", "5") or 5)
        self.quiet_s = 2 * retry + 2  # no MO left in smsbox's retry queue once this passes

    def run(self, name: str, *, rate: float, seconds: float, warmup: float,
            abort: bool = False, feed_cap: float | None = None,
            drain_cap: float = 90.0) -> Step:
        """fakesmsc at `rate` for warmup + `seconds`, then every MO answered; the figures over
        the window after the warm-up, at fakesmsc and in PostgreSQL.

        `abort`: stop writing once more than ABORT_BACKLOG_S of the traffic waits for its
        reply (the rate clearly does not hold: no need to pile up what must then drain); a
        second fakesmsc then takes the replies still to come. `feed_cap` (the burst): stop
        counting MOs Kannel still hands over this long after the last was written."""
        source = f"{self.tag}-{name}"
        count = max(math.ceil(rate * (warmup + seconds)), 1)
        step = Step(name, source, rate, count, warmup, seconds, burst=feed_cap is not None)

        def config(ports: Ports) -> str:
            return self.deployed.config(self.folder / name, ports, smsc_id=source,
                                        ingest=self.system.settings.ingest_url,
                                        token=self.system.settings.secret(),
                                        password=self.password)

        with boxes(self.folder / name, config, self.ports, keep_sendsms=True) as k:
            sender = step.sender = k.phone("mo", self.lines, count=count, rate=rate)
            roots = {**self.system.roots, **k.roots}
            at_start, before = self._snapshot(roots), None
            end = sender.started + warmup + seconds
            limit = max(ABORT_BACKLOG_S * rate, 20)
            while True:
                sample = step.read()
                if before is None and sample[0] >= sender.started + warmup:
                    step.first, before = sample, self._snapshot(roots)
                if sample[0] >= end:
                    break
                if abort and sample[1] - sample[2] > limit:
                    step.aborted = True
                    break
                time.sleep(0.25)
            step.last = step.read()
            if before is None:  # stopped within the warm-up: the window is all it ran
                step.first, before = (sender.started, 0, 0), at_start
            step.cpu = cpu.cpu_between(before, self._snapshot(roots))
            if step.aborted:
                sender.stop()
                sender.read()
                step.receiver = k.phone("replies", self.lines[:1], count=0)
            if feed_cap is None:
                step.drained_s, step.drained = self._drain(step, drain_cap)
            else:
                step.drained_s, step.drained = self._settle(step, end, feed_cap, drain_cap)
            for phone in (step.sender, step.receiver):
                if phone is not None:
                    phone.stop()
                    phone.read()
            step.smsbox = _smsbox_counts(self.folder / name / "smsbox.log")
            step.integrity = self._integrity(step)
        self.steps.append(step)
        return step

    def _snapshot(self, roots: dict[str, int]) -> cpu.CpuSnapshot:
        system = self.system
        return cpu.snapshot(roots, system.connect, None if system.embedded_redis else system.redis,
                            own_postgres=system.embedded_postgres)

    def _fed(self, conn: Any, step: Step, changed: list[Any]) -> bool:
        """Whether Kannel handed the gateway every MO written, each is answered and its reply
        reached fakesmsc; or, every accepted one answered, nothing changed for longer than
        smsbox waits between retries (the rest it gave up on)."""
        sample = step.read()
        accepted = reports.integrity(conn, step.source)[0]
        unanswered = reports.unanswered(conn, step.source)
        now = time.monotonic()
        if (accepted, sample[2]) != changed[0]:
            changed[:] = [(accepted, sample[2]), now]
        assert step.sender is not None
        written_all = step.aborted or step.sender.sent >= step.count
        return written_all and unanswered == 0 and (
            (accepted >= sample[1] and sample[2] >= accepted) or now - changed[1] >= self.quiet_s)

    def _drain(self, step: Step, cap_s: float) -> tuple[float, bool]:
        """Wait until `_fed`; (seconds waited, whether it was)."""
        started = time.monotonic()
        changed: list[Any] = [None, started]
        with self.system.connect() as conn:
            while time.monotonic() - started < cap_s:
                if self._fed(conn, step, changed):
                    return time.monotonic() - started, True
                time.sleep(0.5)
        self.log(f"  ({step.name} through Kannel not drained after {cap_s:.0f} s)")
        return time.monotonic() - started, False

    def _settle(self, step: Step, written_by: float, feed_cap: float,
                cap_s: float) -> tuple[float, bool]:
        """The burst: wait until `_fed`, but no longer than `feed_cap` after the last MO was
        written: Kannel holds what the gateway refused and hands it over as the gateway takes
        it, for minutes after an overload. If MOs are still to come then, those received
        from now on are not counted (`cut_at`). Then wait until every counted MO is answered
        or past the SLA. (seconds waited, whether every MO was accepted and answered)."""
        started = time.monotonic()
        changed: list[Any] = [None, started]
        sla = self.system.settings.sla_seconds
        with self.system.connect() as conn:
            while time.time() < written_by + feed_cap:
                if self._fed(conn, step, changed):
                    return time.monotonic() - started, True
                time.sleep(0.5)
            _, written, _ = step.read()
            if reports.integrity(conn, step.source)[0] < written:
                step.cut_at = time.time()
                self.log(f"  (burst through Kannel: MOs Kannel hands over more than "
                         f"{feed_cap:.0f} s after the last was written are not counted)")
            until = step.cut_at or math.inf
            while time.monotonic() - started < cap_s:
                step.read()
                pending = [r[1] for r in reports.timings(conn, step.source)
                           if r[1] <= until and (r[4] is None or r[5] < r[6])]
                if not pending:
                    return time.monotonic() - started, step.cut_at is None
                if time.time() > max(pending) + sla + 1:
                    break
                time.sleep(1.0)
        return time.monotonic() - started, False

    def counted(self, step: Step) -> tuple[list[tuple], list[tuple]]:
        """A step's PostgreSQL rows (id, received, created, claimed, sent, parts sent, parts):
        those counted, and those received after the bench stopped counting."""
        with self.system.connect() as conn:
            rows = reports.timings(conn, step.source)
        if step.cut_at is None:
            return rows, []
        return ([r for r in rows if r[1] <= step.cut_at],
                [r for r in rows if r[1] > step.cut_at])

    def _integrity(self, step: Step) -> dict[str, Any]:
        """Every MO the gateway accepted got exactly one reply: PostgreSQL's rows, and the
        replies fakesmsc received. A step stopped early loses at the phone the MTs that were
        in its first fakesmsc's socket (bearerbox had written them: their delivery reports
        say so), and a burst the bench stopped counting may still have MOs coming in: there
        the phone is not checked, and a counted MO not answered when the bench stopped
        waiting (past the SLA) is `unanswered`, not missing."""
        with self.system.connect() as conn:
            inbound, answered, missing_, duplicated, failed = reports.integrity(conn, step.source)
            dead = reports.dead_letters_of(conn, step.source)
            # Delivery reports that came back through Kannel's dlr-url to the ingest.
            delivered = reports.delivered_of(conn, step.source)
        counted, after = self.counted(step)
        unanswered = 0
        if step.burst and (step.cut_at is not None or not step.drained):
            unanswered = sum(1 for r in counted if r[4] is None or r[5] < r[6])
            missing_ = 0
        phone_checked = not step.aborted and step.cut_at is None
        assert step.sender is not None
        return {"written": step.sender.sent, "inbound": inbound, "counted": len(counted),
                "answered": answered, "missing": missing_, "unanswered": unanswered,
                "duplicated": duplicated, "failed": failed, "dead_letters": dead,
                "delivered": delivered, "replies_at_fakesmsc": step.replies,
                "phone_checked": phone_checked,
                "exactly_one_reply": bool(inbound and missing_ == 0 and duplicated == 0
                                          and failed == 0
                                          and (not phone_checked or step.replies == inbound))}

    def summary(self, step: Step) -> dict[str, Any]:
        """A step's figures: at fakesmsc over the window, and from PostgreSQL's rows."""
        sla = self.system.settings.sla_seconds
        rows, after = self.counted(step)
        latencies = [r[4] - r[1] if r[4] is not None else math.inf for r in rows]
        within = sum(1 for s in latencies if s <= sla)
        received = [r[1] for r in rows]
        # claimed -> sent of one-part replies: the transport's send, sendsms's answer in it
        sends = [r[4] - r[3] for r in rows if r[4] is not None and r[3] is not None
                 and r[6] == 1]
        assert step.sender is not None and step.cpu is not None
        cores = step.cpu["cores"]
        kannel = sum(cores.get(n, 0.0) for n in KANNEL_PROCESSES)
        gateway_cores = sum(v for n, v in cores.items()
                            if n not in (*KANNEL_PROCESSES, "bench", cpu.OTHER, cpu.STEAL))
        replies = step.replies_per_s()
        return {
            "offered_per_s": round(step.rate, 1), "mos": step.count, "aborted": step.aborted,
            "written_per_s": round(step.written_per_s(), 1),
            "replies_per_s": round(replies, 1), "backlog_growth": step.backlog_growth(),
            "window_s": round(step.last[0] - step.first[0], 1),
            "written": step.sender.sent, "accepted": len(rows),
            "accepted_after_cut": len(after),
            "not_accepted": max(step.sender.sent - len(rows) - len(after), 0),
            "replies_at_fakesmsc": step.replies,
            "within_sla": within, "late": len(rows) - within, "sla_s": sla,
            "sla_ok_ratio": round(within / len(rows), 4) if rows else None,
            "latency_s": stats([s for s in latencies if s != math.inf]),
            "unsent": sum(1 for s in latencies if s == math.inf),
            "send_s": stats(sends),
            "receipt_span_s": round(max(received) - step.sender.started, 1) if received else 0.0,
            "drained": step.drained, "drained_after_s": round(step.drained_s, 1),
            "smsbox": step.smsbox, "integrity": step.integrity,
            "cpu": step.cpu,
            "cpu_ms_per_reply": {
                "gateway": round(gateway_cores * 1000 / replies, 2),
                "kannel": round(kannel * 1000 / replies, 3),
                "machine": round(step.cpu["machine_busy_cores"] * 1000 / replies, 2),
            } if replies else {},
        }

    def integrity(self) -> dict[str, Any]:
        """The steps' integrity together."""
        parts = [s.integrity for s in self.steps]
        total = {key: sum(p[key] for p in parts) for key in
                 ("written", "inbound", "counted", "answered", "missing", "unanswered",
                  "duplicated", "failed", "dead_letters", "delivered", "replies_at_fakesmsc")}
        phone = [s for s in self.steps if s.integrity["phone_checked"]]
        return {**total, "phone_checked_steps": [s.name for s in phone],
                "phone_checked_replies": sum(s.replies for s in phone),
                "phone_checked_inbound": sum(s.integrity["inbound"] for s in phone),
                "exactly_one_reply": bool(parts) and all(p["exactly_one_reply"] for p in parts)}


_NUMBERS = re.compile(rb"\d+")
_QUOTED = re.compile(rb"<[^>]*>|https?://\S+")  # URLs carry the bridge token: never kept


def _smsbox_counts(path: Path) -> dict[str, Any]:
    """What smsbox logged of its trouble: its error and warning lines, the most frequent by
    message (numbers, URLs and quoted values taken out)."""
    text = _read_from(path, 0)
    kinds: dict[str, int] = {}
    for line in text.splitlines():
        for level in (b"ERROR: ", b"WARNING: "):
            at = line.find(level)
            if at >= 0:
                message = _NUMBERS.sub(b"N", _QUOTED.sub(b"<>", line[at:]))[:120]
                key = message.decode("utf-8", "replace")
                kinds[key] = kinds.get(key, 0) + 1
    top = dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:5])
    return {"error_lines": text.count(b"] ERROR: "), "warning_lines": text.count(b"] WARNING: "),
            "messages": top}


def measure_through_kannel(seconds: float, rate: float, *, redis_url: str | None = None,
                           database_url: str | None = None, persons: int = 20_000,
                           log: Any = print) -> dict[str, Any]:
    """The gateway driven through Kannel as deployed: figures and details (module docstring).

    `rate`: where the steady steps start, the rate the gateway sustained with the file
    transport in this run."""
    d = through_durations(seconds)
    deployed = Deployed.read()
    user = deployed.get("sendsms-user", "username", "govsms")
    password = secrets.token_urlsafe(18)
    ports = Ports.free()

    def transport(settings: Settings) -> str:
        dlr = (f"{settings.ingest_url}/sms/dlr?token={settings.secret()}"
               "&outbound={outbound_id}&type=%d")
        return (f"kannel+http://{user}:{password}@127.0.0.1:{ports.sendsms}/cgi-bin/sendsms"
                f"?dlr-url={quote(dlr, safe='')}")

    with _folder("govsms-bench-kannel-") as folder, gateway(
            redis_url=redis_url, database_url=database_url, persons=persons, log=log,
            transport=transport) as system:
        through = Through(system, folder, ports, deployed, password, persons=persons, log=log)
        checks: list[dict[str, Any]] = []
        held, sustained = False, 0.0
        offered = max(rate, 1.0)
        for n in range(1, STEPS + 1):
            step = through.run(f"steady{n}", rate=offered, seconds=d["window"],
                               warmup=d["warmup"], abort=True, drain_cap=d["drain_cap"])
            summary = through.summary(step)
            ok = (not step.aborted and summary["replies_per_s"] >= 0.95 * summary["written_per_s"]
                  and summary["backlog_growth"] <= max(offered, 5))
            checks.append({**summary, "held": ok})
            log(f"  through Kannel at {offered:,.0f}/s: {summary['replies_per_s']:,.1f} replies/s"
                f" at fakesmsc, backlog {summary['backlog_growth']:+d}"
                f"{' (stopped early)' if step.aborted else ''} -> "
                f"{'held' if ok else 'did not hold'}; {summary['late']} past the SLA")
            if ok:
                held, sustained = True, min(summary["replies_per_s"], offered)
                break
            sustained = summary["replies_per_s"]
            offered = max(min(max(STEP_DOWN * offered, 0.95 * sustained), 0.95 * offered), 1.0)
        burst_rate = BURST_FACTOR * max(sustained, 1.0)
        step = through.run("burst", rate=burst_rate, seconds=d["burst"], warmup=0.0,
                           feed_cap=d["burst_feed_cap"], drain_cap=d["drain_cap"])
        burst = through.summary(step)
        log(f"  burst through Kannel {burst_rate:,.0f}/s for {d['burst']:.0f} s: "
            f"{burst['sla_ok_ratio'] or 0:.1%} of {burst['accepted']:,} accepted answered "
            f"within {burst['sla_s']:.0f} s, {burst['not_accepted']:,} not accepted "
            f"({step.drained_s:.0f} s after)")
        integrity = through.integrity()
        processes = [n for n in system.roots if n not in ("redis", "postgres")]
    steady = checks[-1]
    return {
        "figures": {
            "kannel_e2e_msgs_per_s": round(sustained, 1) if sustained > 0 else None,
            "kannel_burst_sla_ok_ratio": burst["sla_ok_ratio"],
        },
        "details": {
            "durations_s": d, "started_at_per_s": round(max(rate, 1.0), 1), "held": held,
            "steady_checks": checks, "late": steady["late"], "burst": burst,
            "burst_factor": BURST_FACTOR, "integrity": integrity,
            "abort_backlog_s": ABORT_BACKLOG_S, "step_down": STEP_DOWN,
            "kannel_settings": {key: deployed.get("smsbox", key) for key in
                                ("http-request-retry", "http-queue-delay", "mo-recode")},
            "mo_lines": len(through.lines), "processes": processes,
        },
    }


def measure(seconds: float, *, e2e_rate: float | None, redis_url: str | None = None,
            database_url: str | None = None, persons: int = 20_000, through: bool = True,
            log: Any = print) -> dict[str, Any]:
    """Every Kannel figure (None for those that could not be measured, the reason in the
    details): the ceiling, then (unless not `through`) the gateway through Kannel."""
    figures: dict[str, Any] = dict.fromkeys(FIGURES)
    details: dict[str, Any] = {}
    reason = missing()
    if reason:
        log(f"  not measured: {reason}")
        return {"figures": figures, "details": {"skipped": reason}}
    try:
        ceiling = measure_ceiling(seconds, log=log)
        figures.update(ceiling["figures"])
        details["ceiling"] = ceiling["details"]
    except Exception as error:  # noqa: BLE001 - the rest of the run's figures still count
        details["ceiling"] = {"error": _failed("Kannel's ceiling", error, log)}
    if not through:
        return {"figures": figures, "details": details}
    try:
        result = measure_through_kannel(seconds, e2e_rate or 1.0, redis_url=redis_url,
                                         database_url=database_url, persons=persons, log=log)
        figures.update(result["figures"])
        details["through"] = result["details"]
    except Exception as error:  # noqa: BLE001
        details["through"] = {"error": _failed("the gateway through Kannel", error, log)}
    return {"figures": figures, "details": details}


def _failed(what: str, error: Exception, log: Any) -> str:
    """Log why `what` was not measured (with the traceback) and return the reason."""
    for line in traceback.format_exc().rstrip().splitlines():
        log(f"    {line}")
    reason = f"{type(error).__name__}: {error}"
    log(f"  {what} not measured: {reason}")
    return reason


def ratio(e2e: float | None, ceiling: float | None) -> float | None:
    """`e2e / ceiling`, None unless both were measured."""
    return round(e2e / ceiling, 5) if e2e and ceiling else None


