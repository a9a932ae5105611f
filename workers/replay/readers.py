"""Reading message logs: our own export (JSON Lines), CSV with a header, Kannel's access log."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.phones import to_e164

FORMATS = ("jsonl", "csv", "kannel")
CSV_COLUMNS = ("received_at", "from", "to", "text")


class ReplayError(Exception):
    """A log that cannot be replayed, or a run that cannot go on; the message says why."""


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound SMS read from a log, with the reply the log recorded for it (if any)."""

    file: str
    line: int
    key: str                        # its id in the log: the external id when sent
    received_at: dt.datetime | None
    sender: str
    shortcode: str
    text: str
    recorded: str | None = None
    recorded_sealed: bool = False


@dataclass(slots=True)
class Parsed:
    """What one file held: messages, lines skipped (with why) and lines of other kinds."""

    file: str
    format: str
    messages: list[Message] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    ignored: int = 0    # lines that are not inbound messages (Kannel's Sent SMS, DLR, markers)

    def summary(self) -> dict[str, Any]:
        """The file's counts, as kept on the run."""
        return {"file": self.file, "format": self.format, "messages": len(self.messages),
                "skipped": len(self.skipped), "ignored": self.ignored}


_KANNEL_STAMP = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def detect(head: bytes) -> str | None:
    """The format of a file from its first bytes: jsonl, csv, kannel, or None."""
    for raw in head.splitlines():
        line = raw.removeprefix(b"\xef\xbb\xbf").strip()
        if not line:
            continue
        if line.startswith(b"{"):
            return "jsonl"
        if _KANNEL_STAMP.match(line) or b" [SMSC:" in line:
            return "kannel"
        try:
            names = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, StopIteration, csv.Error):
            return None
        return "csv" if set(CSV_COLUMNS) <= {n.strip() for n in names} else None
    return None


def read(path: Path) -> Parsed:
    """Read one log file, in the format its first line shows."""
    data = path.read_bytes()
    kind = detect(data[:65536])
    name = str(path)
    if kind == "jsonl":
        return parse_jsonl(data.decode("utf-8-sig").splitlines(), name)
    if kind == "csv":
        return parse_csv(data.decode("utf-8-sig"), name)
    if kind == "kannel":
        return parse_kannel(data.splitlines(), name)
    raise ReplayError(f"{name}: not JSON Lines, CSV with a header {','.join(CSV_COLUMNS)}, "
                      "or a Kannel access log")


def _instant(value: Any) -> dt.datetime | None:
    """An ISO 8601 time (UTC when it names no zone); None for none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError("received_at is not a string")
    when = dt.datetime.fromisoformat(value.strip())
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]


class _Keys:
    """Keys made from a message's content, told apart by their occurrence in the file."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seen: Counter[str] = Counter()

    def __call__(self, *parts: object) -> str:
        key = f"{self.prefix}:{_digest(*parts)}"
        self.seen[key] += 1
        n = self.seen[key]
        return key if n == 1 else f"{key}:{n}"


def parse_jsonl(lines: Iterable[str], name: str) -> Parsed:
    """Our export: one object a line with from, to, text; received_at, id, source, reply optional."""
    out = Parsed(name, "jsonl")
    keys = _Keys("jsonl")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise TypeError("not an object")
            sender, to, text = obj.get("from"), obj.get("to"), obj.get("text")
            if not all(isinstance(v, str) for v in (sender, to, text)) or not sender or not to:
                raise TypeError("from, to and text must be strings")
            when = _instant(obj.get("received_at"))
            reply = obj.get("reply")
            if reply is not None and not isinstance(reply, str):
                raise TypeError("reply must be a string or null")
        except (ValueError, TypeError) as error:
            out.skipped.append((number, str(error) or type(error).__name__))
            continue
        ident, source = obj.get("id"), obj.get("source")
        if ident not in (None, ""):
            key = f"{source}:{ident}" if source else str(ident)
        else:
            key = keys(obj.get("received_at"), sender, to, text)
        out.messages.append(Message(name, number, key, when, sender, to, text, reply,
                                    bool(obj.get("sealed"))))
    return out


def parse_csv(text: str, name: str) -> Parsed:
    """A header `received_at,from,to,text` with optional `reply` and `id`; RFC 4180 quoting."""
    out = Parsed(name, "csv")
    keys = _Keys("csv")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {c.strip() for c in reader.fieldnames or ()}
    if not set(CSV_COLUMNS) <= columns:
        raise ReplayError(f"{name}: the CSV header needs {','.join(CSV_COLUMNS)}")
    reader.fieldnames = [c.strip() for c in reader.fieldnames or ()]
    start = reader.line_num + 1
    try:
        for row in reader:
            number, start = start, reader.line_num + 1   # a quoted text may span lines
            sender, to, body = row.get("from"), row.get("to"), row.get("text")
            if not sender or not to or body is None:
                out.skipped.append((number, "from, to and text are required"))
                continue
            try:
                when = _instant(row.get("received_at"))
            except (ValueError, TypeError):
                out.skipped.append((number, "received_at is not an ISO 8601 time"))
                continue
            key = row.get("id") or keys(row.get("received_at"), sender, to, body)
            out.messages.append(Message(name, number, key, when, sender.strip(), to.strip(), body,
                                        row.get("reply") or None))
    except csv.Error as error:
        out.skipped.append((reader.line_num, f"CSV: {error}"))
    return out


# Kannel's default access-log-format (gw/bb_alog.c), after gwlib's "YYYY-MM-DD HH:MM:SS "
# marker (GMT unless access-log-time = local; absent with access-log-clean):
#   %s [SMSC:%s] [SVC:%s] [ACT:%s] [BINF:%s] [FID:%s] [META:%s] [from:%s] [to:%s]
#   [flags:mclass:coding:mwi:compress:dlr_mask] [msg:LEN:TEXT] [udh:LEN:HEX]
# META is absent in older versions. LEN counts the message's octets; TEXT is those octets
# with unprintable ones as '.', or in hex (2 * LEN digits) when coding is 8-bit (1) or UCS-2 (2).
_KANNEL_EVENT = re.compile(rb"^(?:(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) )?(.+?) \[SMSC:([^\]]*)\]")
_KANNEL_ADDRESSES = re.compile(rb" \[from:([^\]]*)\] \[to:([^\]]*)\]")
_KANNEL_FLAGS = re.compile(rb" \[flags:(-?\d+):(-?\d+):(-?\d+):(-?\d+):(-?\d+)\]")
_KANNEL_MSG = re.compile(rb" \[msg:(\d+):")
RECEIVE_SMS = b"Receive SMS"


def kannel_text(line: bytes, start: int, length: int, coding: int) -> str | None:
    """The text of `[msg:LEN:` at `start`, by its length (it may hold `]`); None if it does not fit."""
    if coding in (1, 2):
        digits = line[start:start + 2 * length]
        if len(digits) != 2 * length or line[start + 2 * length:start + 2 * length + 1] != b"]":
            return None
        try:
            octets = bytes.fromhex(digits.decode("ascii"))
        except ValueError:
            return None
        return octets.decode("utf-16-be" if coding == 2 else "utf-8", errors="replace")
    if line[start + length:start + length + 1] == b"]":
        return line[start:start + length].decode("utf-8", errors="replace")
    # A log re-encoded along the way: LEN may count characters rather than octets.
    rest = line[start:].decode("utf-8", errors="replace")
    if rest[length:length + 1] == "]":
        return rest[:length]
    return None


def parse_kannel(lines: Iterable[bytes], name: str) -> Parsed:
    """The `Receive SMS` lines of a Kannel access log; every other line is ignored."""
    out = Parsed(name, "kannel")
    keys = _Keys("kannel")
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        event = _KANNEL_EVENT.match(line)
        if event is None or event[2] != RECEIVE_SMS:
            if line.strip():
                out.ignored += 1
            continue
        addresses = _KANNEL_ADDRESSES.search(line, event.end())
        if addresses is None:
            out.skipped.append((number, "no [from:] [to:]"))
            continue
        flags = _KANNEL_FLAGS.search(line, addresses.end())
        msg = _KANNEL_MSG.search(line, (flags or addresses).end())
        if msg is None:
            out.skipped.append((number, "no [msg:LEN:TEXT]"))
            continue
        coding = int(flags[2]) if flags else 0
        text = kannel_text(line, msg.end(), int(msg[1]), coding)
        if text is None:
            out.skipped.append((number, "the text is not as long as [msg:LEN:] says"))
            continue
        stamp = event[1].decode() if event[1] else None
        sender, to = addresses[1].decode(errors="replace"), addresses[2].decode(errors="replace")
        if not sender or not to:
            out.skipped.append((number, "empty from or to"))
            continue
        when = _instant(stamp.replace(" ", "T")) if stamp else None
        key = keys(stamp, event[3].decode(errors="replace"), sender, to, text)
        out.messages.append(Message(name, number, key, when, sender, to, text))
    return out


def normalized(message: Message, regions: Mapping[str, str]) -> Message:
    """The message with its sender as E.164, as the ingest writes it (region by short code)."""
    sender = to_e164(message.sender, regions.get(message.shortcode, "KZ")) or message.sender
    if sender == message.sender:
        return message
    return Message(message.file, message.line, message.key, message.received_at, sender,
                   message.shortcode, message.text, message.recorded, message.recorded_sealed)
