"""Kannel for the tests: bearerbox with a fakesmsc link, smsbox, and fakesmsc as the phone side.

fakesmsc (Kannel's test SMSC, /usr/lib/kannel/test/fakesmsc) connects to
bearerbox's `smsc = fake` port; every line written to its stdin is an MO
(`sender receiver text|ucs2|data ... msgdata`), and every MT Kannel sends it is
logged as `Got message N: <sender receiver type ...>`. smsbox's catch-all
sms-service fetches the gateway's `/sms/inbound` (get-url), and its sendsms
port takes our Kannel transport. All on free ports, in a folder of their own.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from bench.kannel.peers import (
    BEARERBOX,
    FAKESMSC,
    SMSBOX,
    Ports,
    core,
    missing,
    mo_line,
    smsbox_group,
)
from workers.local.embedded import free_port

SENDSMS_USER, SENDSMS_PASSWORD = "govsms", "test-sendsms-password"


# After the bench's `core` (bearerbox's groups) and `smsbox_group` (smsbox's first settings):
# the deployed bridge settings, the get-url service and the sendsms user.
SMSBOX_CONFIG = """\
{smsbox_extra}
group = sms-service
keyword = default
catch-all = true
get-url = "{ingest}/sms/inbound?from=%p&to=%P&text=%a&id=%I&smsc=%i&token={token}"
max-messages = 0
concatenation = true

group = sendsms-user
username = {user}
password = {password}
max-messages = 10
concatenation = true
"""


def smsbox_settings(project: Path) -> str:
    """The smsbox group's settings of deploy/kannel/smsbox.conf that matter to the bridge, and
    its log level."""
    keep = ("mo-recode", "http-request-retry", "http-queue-delay", "log-level")
    lines = (project / "deploy" / "kannel" / "smsbox.conf").read_text().splitlines()
    return "".join(f"{line.strip()}\n" for line in lines
                   if line.split("=")[0].strip() in keep)


@dataclass(frozen=True, slots=True)
class Received:
    """One SMS Kannel handed to fakesmsc (the phone side)."""

    sender: str
    receiver: str
    kind: str              # text, data, ucs-2 (without UDH) or the type after the UDH
    udh: bytes | None
    data: bytes

    def text(self, coding: str | None = None) -> str:
        """The text: by `kind`, or by `coding` ("gsm7" or "ucs2") for a part with a UDH."""
        if coding == "ucs2" or self.kind == "ucs-2":
            return self.data.decode("utf-16-be")
        return self.data.decode("utf-8")


_GOT = re.compile(r"Got message \d+: <(.*)>$")


def _parse(line: str) -> Received:
    words = line.split(" ")
    sender, receiver, kind, rest = words[0], words[1], words[2], words[3:]
    udh = None
    if kind == "udh":
        udh, kind, rest = unquote_to_bytes(rest[0]), rest[1], rest[2:]
    body = " ".join(rest)
    data = body.encode() if kind == "text" else unquote_to_bytes(body.replace("+", " "))
    return Received(sender, receiver, kind, udh, data)


@dataclass
class Kannel:
    """bearerbox + smsbox + fakesmsc, configured for a gateway at `ingest`."""

    folder: Path
    ingest: str
    token: str
    project: Path = Path(__file__).resolve().parents[3]
    admin: int = field(default_factory=free_port)
    smsbox: int = field(default_factory=free_port)
    sendsms: int = field(default_factory=free_port)
    fake: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    sent: int = 0

    @property
    def transport_url(self) -> str:
        """GOVSMS_TRANSPORT for this smsbox's sendsms."""
        return (f"kannel+http://{SENDSMS_USER}:{SENDSMS_PASSWORD}@127.0.0.1:{self.sendsms}"
                "/cgi-bin/sendsms")

    def write_config(self) -> Path:
        """kannel.conf in the folder."""
        path = self.folder / "kannel.conf"
        ports = Ports(admin=self.admin, smsbox=self.smsbox, fake=self.fake, sendsms=self.sendsms)
        path.write_text(core(self.folder, ports, "fake") + smsbox_group(self.folder, ports)
                        + SMSBOX_CONFIG.format(ingest=self.ingest, token=self.token,
                                               user=SENDSMS_USER, password=SENDSMS_PASSWORD,
                                               smsbox_extra=smsbox_settings(self.project)))
        return path

    def _spawn(self, name: str, argv: list[str], **kwargs: object) -> subprocess.Popen:
        out = (self.folder / f"{name}.out").open("wb")
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.folder,
                                   **kwargs)  # type: ignore[call-overload]
        self.processes[name] = process
        return process

    def _wait_port(self, port: int, name: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log(name)[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} does not listen on {port}: {self.log(name)[-2000:]}")

    def start(self) -> Kannel:
        """Start bearerbox, smsbox and fakesmsc; return once fakesmsc is connected."""
        config = str(self.write_config())
        # Their console logs only panics, as Debian's init script starts them (`-v 4`).
        self._spawn("bearerbox", [BEARERBOX, "-v", "4", config])
        self._wait_port(self.admin, "bearerbox")
        self._spawn("smsbox", [SMSBOX, "-v", "4", config])
        self._wait_port(self.sendsms, "smsbox")
        self._wait_port(self.fake, "bearerbox")
        # Interactive fakesmsc: one MO per stdin line; -v 0 logs every MT it gets.
        self._spawn("fakesmsc", [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.fake), "-i", "0",
                                 "-v", "0"], stdin=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while "Fakesmsc client connected" not in self.log("bearerbox"):
            if time.monotonic() > deadline or self.processes["fakesmsc"].poll() is not None:
                raise RuntimeError(f"fakesmsc did not connect: {self.log('fakesmsc')[-2000:]}")
            time.sleep(0.05)
        return self

    def log(self, name: str) -> str:
        """A process's output (bearerbox and smsbox: their log files)."""
        path = self.folder / (f"{name}.log" if name in ("bearerbox", "smsbox") else f"{name}.out")
        return path.read_text(errors="replace") if path.exists() else ""

    def mo(self, sender: str, receiver: str, text: str) -> None:
        """The phone sends `text`: as `text` when ASCII, else as UCS-2 (what a handset does)."""
        line = mo_line(sender, receiver, text)
        if len(line.encode()) >= 255:   # fakesmsc reads stdin in 256-octet lines
            raise ValueError("MO too long for fakesmsc's interactive mode")
        stdin = self.processes["fakesmsc"].stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        stdin.flush()
        self.sent += 1
        # One line at a time: fakesmsc's stdio buffer would hold a second line unseen.
        done = re.compile(rf"sent message {self.sent}\b")
        deadline = time.monotonic() + 10
        while not done.search(self.log("fakesmsc")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"fakesmsc did not send: {self.log('fakesmsc')[-2000:]}")
            time.sleep(0.02)

    def logs(self) -> dict[str, str]:
        """What bearerbox and smsbox wrote, to their log files and to their console."""
        return {f"kannel-{path.name}": path.read_text(errors="replace")
                for name in ("bearerbox", "smsbox")
                for path in (self.folder / f"{name}.log", self.folder / f"{name}.out")
                if path.exists()}

    def received(self) -> list[Received]:
        """Every MT that reached fakesmsc, in order."""
        found = (_GOT.search(line) for line in self.log("fakesmsc").splitlines())
        return [_parse(m[1]) for m in found if m]

    def stop(self) -> None:
        """Stop fakesmsc, smsbox, bearerbox (Kannel takes a few seconds to shut down)."""
        for name in ("fakesmsc", "smsbox", "bearerbox"):
            process = self.processes.get(name)
            if process is None:
                continue
            if process.stdin:
                process.stdin.close()
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def installed() -> bool:
    """Whether the Kannel binaries are here."""
    return missing() is None and shutil.which(BEARERBOX) is not None
