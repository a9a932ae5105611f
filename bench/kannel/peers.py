"""Kannel's processes for the bench: ports, configs, fakesmsc as the phones, start and stop."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

from bench import cpu
from bench.loadgen import Traffic
from workers.local.embedded import free_port
from workers.local.gateway import read_from
from workers.local.supervisor import Child, Supervisor


BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
DEPLOYED = Path(__file__).resolve().parents[2] / "deploy" / "kannel" / "smsbox.conf"

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
        return (f"KANNEL NOT INSTALLED ({', '.join(absent)} missing): run deploy/ensure-peers "
                "(make test and make bench do) to install Debian's kannel and kannel-extras")
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

_SMSBOX = """\
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
log-file = "{folder}/smsbox.log"
"""

_STATIC = """
group = sms-service
keyword = default
catch-all = true
text = "ok"
"""


def core(folder: Path, ports: Ports, smsc_id: str) -> str:
    """bearerbox's groups: the core on `ports` and one fake SMSC link named `smsc_id`."""
    return _CORE.format(admin=ports.admin, admin_password=secrets.token_hex(8),
                        smsbox=ports.smsbox, folder=folder, smsc_id=smsc_id, fake=ports.fake)


def smsbox_group(folder: Path, ports: Ports) -> str:
    """smsbox's own group's first settings: bearerbox's and its sendsms port, its log file
    (logging at the deployed level: deploy/kannel/smsbox.conf)."""
    return _SMSBOX.format(smsbox=ports.smsbox, sendsms=ports.sendsms, folder=folder)


def static_config(folder: Path, ports: Ports) -> str:
    """Kannel on its own: every MO answered `ok` by smsbox itself, logging as deployed."""
    level = Deployed.read().get("smsbox", "log-level")
    return (core(folder, ports, "ceiling") + smsbox_group(folder, ports)
            + (f"log-level = {level}\n" if level is not None else "") + _STATIC)


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
                           "log-file": f'"{folder}/smsbox.log"'},
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
        self.sent = max(self.sent, last_number(lines, b"sent message "))
        self.got = max(self.got, last_number(lines, b"Got message "))
        if b" udh " in lines:
            self.partial += sum(1 for line in lines.splitlines() if partial_line(line))
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


def last_number(lines: bytes, marker: bytes) -> int:
    """N of the last `marker`N line (`sent message N`, `Got message N: <...>`); not the
    totals fakesmsc logs when it stops (`from first to last sent message 2.4 s`)."""
    end = len(lines)
    while (at := lines.rfind(marker, 0, end)) >= 0:
        found = re.match(rb"(\d+)[:\n]", lines[at + len(marker):at + len(marker) + 24])
        if found:
            return int(found[1])
        end = at
    return 0


def partial_line(line: bytes) -> bool:
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


def mo_line(sender: str, receiver: str, text: str) -> str:
    """An MO as fakesmsc writes it: `text` when ASCII, else UCS-2 percent-encoded (what a
    handset sends for Cyrillic)."""
    if text.isascii():
        return f"{sender} {receiver} text {text}"
    return f"{sender} {receiver} ucs2 {quote_from_bytes(text.encode('utf-16-be'), safe='')}"


def mo_lines(traffic: Traffic, count: int) -> list[str]:
    """`count` MOs of the bench's traffic as fakesmsc writes them; empty texts left out."""
    lines: list[str] = []
    for _ in range(count * 3):
        if len(lines) >= count:
            break
        sender, shortcode, text, _ = traffic.next()
        if text.strip() and "\n" not in text:
            lines.append(mo_line(sender, shortcode, text))
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
        wait_until(lambda: b"Fakesmsc client connected" in read_from(bearerbox_log, mark),
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
            running = start_boxes(folder, config(ports), ports)
            break
        except PortTaken:
            if attempt == 2:
                raise
            ports = ports.redraw(keep_sendsms=keep_sendsms)
    try:
        yield running
    finally:
        running.supervisor.stop(timeout_s=15)


class PortTaken(RuntimeError):
    """A box could not bind its port."""


def start_boxes(folder: Path, config: str, ports: Ports) -> Boxes:
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
                wait_until(lambda p=port: listens(p), child.alive, 20, f"{name} on port {port}",
                       folder / f"{name}.log")
            except RuntimeError as error:
                if b"Address already in use" in read_from(folder / f"{name}.log", 0):
                    raise PortTaken(str(error)) from None
                raise
        wait_until(lambda: b"Client connected from" in read_from(folder / "bearerbox.log", 0),
               supervisor.children[0].alive, 20, "smsbox's connection to bearerbox",
               folder / "bearerbox.log")
    except BaseException:
        supervisor.stop(timeout_s=15)
        raise
    return Boxes(folder, ports, supervisor, roots)


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], alive: Callable[[], bool], timeout_s: float, what: str,
           log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if not alive():
            raise RuntimeError(f"bench: Kannel exited waiting for {what}; see {log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: timed out waiting for {what}; see {log_path}")
        time.sleep(0.05)


def sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


def cpu_seconds(a: cpu.CpuSnapshot, b: cpu.CpuSnapshot, names: tuple[str, ...]) -> float:
    return sum(b.groups.get(n, 0.0) - a.groups.get(n, 0.0) for n in names if n in a.groups)


@contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if not os.environ.get("GOVSMS_BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
