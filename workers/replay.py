"""Batch replay of message logs: read, checkpoint in PostgreSQL, run on the `replay` queue, report.

    log files ──► read() ──► replay.runs / replay.items (the checkpoint) ──► [replay queue]
        batch task (ids only) ──► process(): dry-run / compare answer inside a rolled-back
        transaction; send records a new inbound row and answers it ──► [outbound queue]

Formats, detected per file: our own export (JSON Lines), CSV with the header
`received_at,from,to,text[,reply][,id]`, and Kannel's access log (bearerbox's
default `access-log-format`). The tasks carry a run id and item ids only: the texts
and numbers stay in PostgreSQL (Flower shows task arguments). docs/replay.md.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from celery import Celery, Task
from kombu import Exchange, Queue
from psycopg.rows import class_row, dict_row

from replies.masking import mask_digits
from replies.reply import Reply
from services.errors import StoreUnavailable
from services.handler import Request
from services.phones import to_e164
from workers import messages, pipeline, tasks
from workers.queues import REPLAY as QUEUE

log = logging.getLogger(__name__)

BATCH = "govsms.replay.batch"
BATCH_SIZE = 50
MODES = ("dry-run", "compare", "send")
FORMATS = ("jsonl", "csv", "kannel")
CSV_COLUMNS = ("received_at", "from", "to", "text")
# Of a reply that carries a password or code, only these parameters are shown in a report.
SHOWN_WHEN_SEALED = frozenset({"username"})


class ReplayError(Exception):
    """A log that cannot be replayed, or a run that cannot go on; the message says why."""


# ---------------------------------------------------------------- reading logs


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


# ---------------------------------------------------------------- runs and items (the checkpoint)


@dataclass(frozen=True, slots=True)
class Run:
    """A replay run as recorded."""

    id: int
    mode: str
    state: str
    rate: float | None
    inputs: list[dict[str, Any]]
    created_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Item:
    """An item to answer: one message of a run."""

    id: int
    key: str
    received_at: dt.datetime | None
    sender: str
    shortcode: str
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a run is."""

    total: int
    done: int
    failed: int

    @property
    def finished(self) -> bool:
        """Every item is done or failed."""
        return self.done + self.failed >= self.total


_CREATE_RUN = "INSERT INTO replay.runs (mode, rate, inputs) VALUES (%s, %s, %s) RETURNING id"
_COPY_ITEMS = """
COPY replay.items (run_id, seq, file, line, key, received_at, sender, shortcode, text, recorded,
                   recorded_sealed) FROM STDIN
"""


def create_run(conn: psycopg.Connection, mode: str, rate: float | None,
               inputs: Sequence[Parsed], regions: Mapping[str, str]) -> tuple[int, int]:
    """Record a run and its items (senders as E.164, a key repeated kept once): (run id, duplicates)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    seen: set[str] = set()
    duplicates = 0
    with conn.transaction():
        row = conn.execute(_CREATE_RUN, (mode, rate, json.dumps([p.summary() for p in inputs])))
        run_id = row.fetchone()[0]  # type: ignore[index]
        with conn.cursor() as cur, cur.copy(_COPY_ITEMS) as copy:
            seq = 0
            for parsed in inputs:
                for message in parsed.messages:
                    if message.key in seen:
                        duplicates += 1
                        continue
                    seen.add(message.key)
                    m = normalized(message, regions)
                    seq += 1
                    copy.write_row((run_id, seq, m.file, m.line, m.key, m.received_at, m.sender,
                                    m.shortcode, m.text, m.recorded, m.recorded_sealed))
    return run_id, duplicates


_RUN = """
SELECT id, mode, state, rate, inputs, created_at, finished_at FROM replay.runs WHERE id = %s
"""
_SET_STATE = """
UPDATE replay.runs SET state = %(state)s, updated_at = now(),
    finished_at = CASE WHEN %(state)s = 'finished' THEN now() END, rate = coalesce(%(rate)s, rate)
WHERE id = %(id)s
"""
_PROGRESS = """
SELECT count(*), count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed')
FROM replay.items WHERE run_id = %s
"""
_OPEN = "SELECT id FROM replay.items WHERE run_id = %s AND state <> 'done' ORDER BY seq"
# A resumed run tries its failed items again; done ones are never redone.
_RETRY_FAILED = """
UPDATE replay.items SET state = 'pending' WHERE run_id = %s AND state = 'failed'
"""


def get_run(conn: psycopg.Connection, run_id: int) -> Run | None:
    """The run with `run_id`, or None."""
    with conn.cursor(row_factory=class_row(Run)) as cur:
        return cur.execute(_RUN, (run_id,)).fetchone()


def set_state(conn: psycopg.Connection, run_id: int, state: str,
              rate: float | None = None) -> None:
    """Mark a run running, stopped (its queued batches then do nothing) or finished."""
    conn.execute(_SET_STATE, {"id": run_id, "state": state, "rate": rate})


def progress(conn: psycopg.Connection, run_id: int) -> Progress:
    """Items of the run: total, done, failed."""
    total, done, failed = conn.execute(_PROGRESS, (run_id,)).fetchone()  # type: ignore[misc]
    return Progress(total, done, failed)


def open_items(conn: psycopg.Connection, run_id: int) -> list[int]:
    """The ids of the items not done yet, in input order; failed ones become pending again."""
    conn.execute(_RETRY_FAILED, (run_id,))
    return [r[0] for r in conn.execute(_OPEN, (run_id,))]


# ---------------------------------------------------------------- answering items


@dataclass(slots=True)
class Processed:
    """What one batch did: items finished, SMS to deliver, services whose store did not answer."""

    done: int = 0
    failed: int = 0
    outbound: list[int] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one item."""

    id: int
    state: str
    service: str | None = None
    outcome: str | None = None
    reply: str | None = None
    sealed: bool | None = None
    inbound_id: int | None = None
    error: str | None = None


_ITEMS = """
SELECT i.id, i.key, i.received_at, i.sender, i.shortcode, i.text FROM replay.items i
WHERE i.run_id = %s AND i.id = ANY(%s) AND i.state <> 'done'
ORDER BY i.seq
"""
_FINISH = """
UPDATE replay.items SET state = %(state)s, service = %(service)s, outcome = %(outcome)s,
    reply = %(reply)s, sealed = %(sealed)s, inbound_id = coalesce(%(inbound_id)s, inbound_id),
    error = %(error)s, attempts = attempts + 1, done_at = now()
WHERE id = %(id)s AND state <> 'done'
"""


def process(p: pipeline.Pipeline, run_id: int, ids: Sequence[int], *,
            final: bool = False, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
            ) -> Processed:
    """Answer the open items of `ids` as their run's mode says; a stopped run does nothing.

    A store that does not answer leaves its items open for a retry (`unavailable`),
    unless `final`: then dry-run items fail, and sent ones get the "unavailable"
    reply and a dead letter, as live messages do.
    """
    with p.pool.connection() as conn:
        run = get_run(conn, run_id)
        if run is None or run.state != "running":
            return Processed()
        with conn.cursor(row_factory=class_row(Item)) as cur:
            items = cur.execute(_ITEMS, (run_id, list(ids))).fetchall()
    if not items:
        return Processed()
    if run.mode == "send":
        return _send(p, run_id, items, final)
    return _evaluate_all(p, run_id, items, final, now())


def _finish(p: pipeline.Pipeline, results: Sequence[Result]) -> None:
    if not results:
        return
    with p.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(_FINISH, [dataclasses.asdict(r) for r in results])


def masked(reply: Reply) -> Reply:
    """A reply that carries a password or code with those shown as asterisks."""
    if not reply.sealed:
        return reply
    params = {k: v if k in SHOWN_WHEN_SEALED else "*" * len(str(v))
              for k, v in reply.params.items()}
    return Reply(reply.service, reply.outcome, params, sealed=True)


def evaluate(p: pipeline.Pipeline, conn: psycopg.Connection, item: Item,
             when: dt.datetime) -> Result:
    """Parse and answer one item on `conn` as the pipeline would; the caller rolls it back."""
    parsed = p.index.parse(item.shortcode, item.text)
    service = parsed.service
    if service is None:
        reply = pipeline.NOT_FOUND
    else:
        handler = p.registry[service].handler
        if handler is None:
            return Result(item.id, "failed", service, error=f"service {service} is not offered yet")
        reply = handler(conn, Request(item.sender, parsed, item.received_at or when))
    text = p.templates.render(masked(reply))
    return Result(item.id, "done", service, reply.outcome, text, reply.sealed)


def _evaluate_all(p: pipeline.Pipeline, run_id: int, items: Sequence[Item], final: bool,
                  when: dt.datetime) -> Processed:
    out = Processed()
    results: list[Result] = []
    try:
        with p.pool.connection() as conn:
            for item in items:
                try:
                    # Rolled back whatever happens: a registration creates no account.
                    with conn.transaction(force_rollback=True):
                        result = evaluate(p, conn, item, when)
                except (psycopg.OperationalError, StoreUnavailable):
                    raise
                except Exception as error:  # a bug for one message must not block the others
                    log.exception("replay run %s: item %s failed", run_id, item.id)
                    result = Result(item.id, "failed", error=type(error).__name__)
                results.append(result)
    except (psycopg.OperationalError, StoreUnavailable) as error:
        if not final:
            _finish(p, results)  # keep what was answered; the rest waits for the retry
            out.unavailable["store"] = type(error).__name__
            out.done = sum(r.state == "done" for r in results)
            return out
        done_ids = {r.id for r in results}
        results += [Result(i.id, "failed", error=f"store unavailable: {type(error).__name__}")
                    for i in items if i.id not in done_ids]
    _finish(p, results)
    out.done = sum(r.state == "done" for r in results)
    out.failed = len(results) - out.done
    return out


_CLAIM = """
INSERT INTO replay.sent (key, run_id) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING
"""
_SENT_BY = "SELECT run_id, inbound_id FROM replay.sent WHERE key = %s"
_SENT_AS = "UPDATE replay.sent SET inbound_id = %s WHERE key = %s"
# The reply of each inbound message, its parts joined in order; a sealed text never leaves.
REPLY_OF = """
LEFT JOIN LATERAL (
    SELECT (array_agg(o.outcome ORDER BY o.part))[1] AS outcome,
           CASE WHEN bool_or(o.sealed) THEN NULL
                ELSE string_agg(o.text, '' ORDER BY o.part) END AS reply,
           coalesce(bool_or(o.sealed), false) AS sealed
    FROM outbound o WHERE o.inbound_id = i.id
) r ON true
"""
_SENT_RESULTS = f"""
SELECT i.id, i.service, i.state, r.outcome, r.reply, r.sealed FROM inbound i {REPLY_OF}
WHERE i.id = ANY(%s)
"""


def _send(p: pipeline.Pipeline, run_id: int, items: Sequence[Item], final: bool) -> Processed:
    """Each item once, ever: a new inbound message, answered here, delivered by the outbound worker."""
    out = Processed()
    results: list[Result] = []
    mine: dict[int, int] = {}  # item id -> inbound id
    source = f"replay:{run_id}"
    with p.pool.connection() as conn, conn.transaction():
        for item in items:
            conn.execute(_CLAIM, (item.key, run_id))
            owner, inbound_id = conn.execute(_SENT_BY, (item.key,)).fetchone()  # type: ignore[misc]
            if owner != run_id:
                results.append(Result(item.id, "done", outcome="already_sent",
                                      inbound_id=inbound_id, error=f"sent by run {owner}"))
                continue
            # No tariff: the operator charged the citizen for the original message only.
            recorded = messages.record_inbound(conn, source=source, external_id=item.key,
                                               sender=item.sender, shortcode=item.shortcode,
                                               text=item.text)
            conn.execute(_SENT_AS, (recorded.id, item.key))
            mine[item.id] = recorded.id
    if mine:
        try:
            routed = pipeline.dispatch(p, list(mine.values()))
        except (StoreUnavailable, psycopg.OperationalError) as error:
            if final:
                raise
            out.unavailable["dispatch"] = type(error).__name__
            _finish(p, results)   # the already-sent ones; the rest waits for the retry
            out.done = len(results)
            return out
        out.outbound += routed.outbound
        for service, service_ids in routed.services.items():
            try:
                out.outbound += pipeline.answer(p, service, service_ids)
            except StoreUnavailable as error:
                if not final:
                    out.unavailable[service] = str(error)
                    continue
                out.outbound += pipeline.answer_unavailable(p, service, service_ids, str(error))
        with p.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = {r["id"]: r for r in cur.execute(_SENT_RESULTS, (list(mine.values()),))}
        for item_id, inbound_id in mine.items():
            row = rows[inbound_id]
            if row["outcome"] is not None:
                results.append(Result(item_id, "done", row["service"], row["outcome"],
                                      row["reply"], row["sealed"], inbound_id))
            elif row["state"] == "dead":
                results.append(Result(item_id, "failed", row["service"], inbound_id=inbound_id,
                                      error="dead letter (govsms dead-letters list)"))
            # else: its store did not answer; the item stays open for the retry
    _finish(p, results)
    out.done = sum(r.state == "done" for r in results)
    out.failed = len(results) - out.done
    return out


def fail_items(p: pipeline.Pipeline, run_id: int, ids: Sequence[int], reason: str) -> None:
    """Mark the open items of a batch that broke as failed: the run can finish, a resume retries."""
    with p.pool.connection() as conn, conn.cursor(row_factory=class_row(Item)) as cur:
        items = cur.execute(_ITEMS, (run_id, list(ids))).fetchall()
    _finish(p, [Result(i.id, "failed", error=reason) for i in items])


# ---------------------------------------------------------------- driving a run


def batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    """`ids` in batches of `size`."""
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


def drive(conn: psycopg.Connection, run_id: int, send: Callable[[list[int]], None], *,
          batch_size: int = BATCH_SIZE, rate: float | None = None, window: int = 8,
          on_progress: Callable[[Progress], None] = lambda _: None, poll_s: float = 0.2,
          stall_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Progress:
    """Enqueue the run's open items and wait until every one is done or failed.

    At most `window` batches wait on the queue at a time, and with `rate`, items are
    enqueued no faster than `rate` a second. Items that stay open `stall_s` seconds
    with nothing moving are enqueued again (a lost task); items are idempotent.
    """
    if rate is not None:  # about one batch a second, so the pace stays even
        batch_size = max(1, min(batch_size, int(rate)))
    todo = open_items(conn, run_id)
    pending = list(batches(todo, batch_size))
    enqueued: list[int] = []
    start = clock()
    last = progress(conn, run_id)
    base = last.done + last.failed
    moved_at = start
    on_progress(last)
    while True:
        state = progress(conn, run_id)
        settled = state.done + state.failed
        if settled != last.done + last.failed:
            moved_at = clock()
        last = state
        on_progress(state)
        if state.finished:
            return state
        in_flight = len(enqueued) - (settled - base)
        while pending and in_flight < window * batch_size:
            if rate is not None and len(enqueued) + len(pending[0]) > rate * (clock() - start) \
                    + batch_size:
                break
            batch = pending.pop(0)
            send(batch)
            enqueued += batch
            in_flight += len(batch)
        if enqueued and clock() - moved_at > stall_s:
            still = set(open_items(conn, run_id))
            again = [i for i in enqueued if i in still]
            log.warning("replay run %s: nothing moved for %.0f s; enqueuing %d items again",
                        run_id, stall_s, len(again))
            for batch in batches(again, batch_size):
                send(batch)
            moved_at = clock()
        sleep(poll_s)


# ---------------------------------------------------------------- export, report, comparison


_EXPORT = f"""
SELECT i.received_at, i.sender, i.shortcode, i.text, i.external_id, i.source, i.service,
       r.reply, r.outcome, r.sealed
FROM inbound i {REPLY_OF}
WHERE i.received_at >= %s AND i.received_at < %s AND i.source NOT LIKE 'replay:%%'
ORDER BY i.received_at, i.id
"""


def export(conn: psycopg.Connection, since: dt.datetime,
           until: dt.datetime) -> Iterator[dict[str, Any]]:
    """Inbound messages received in [since, until), with their replies; a sealed reply as null.

    Messages that batch replay itself sent (source `replay:<run>`) are left out.
    """
    with conn.transaction(), conn.cursor(name="replay_export", row_factory=dict_row) as cur:
        cur.itersize = 1000
        cur.execute(_EXPORT, (since, until))
        for row in cur:
            yield {"received_at": row["received_at"].astimezone(dt.UTC).isoformat(),
                   "from": row["sender"], "to": row["shortcode"], "text": row["text"],
                   "id": row["external_id"], "source": row["source"], "service": row["service"],
                   "reply": row["reply"], "outcome": row["outcome"], "sealed": row["sealed"]}


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One item of a run as the report shows it."""

    file: str
    line: int
    key: str
    sender: str
    shortcode: str
    text: str
    recorded: str | None
    recorded_sealed: bool
    state: str
    service: str | None
    outcome: str | None
    reply: str | None
    sealed: bool | None
    inbound_id: int | None
    error: str | None

    @property
    def comparable(self) -> bool:
        """The log recorded a reply we can read (not sealed)."""
        return self.recorded is not None and not self.recorded_sealed

    @property
    def same(self) -> bool | None:
        """Whether the new reply is the recorded one; None when there is nothing to compare."""
        if self.state != "done" or not self.comparable:
            return None
        return self.reply == self.recorded

    def as_json(self, mode: str) -> dict[str, Any]:
        """The report line: phone numbers and IINs masked, as in logs."""
        line: dict[str, Any] = {
            "input": f"{self.file}:{self.line}", "id": self.key,
            "from": mask_digits(self.sender), "to": self.shortcode,
            "text": mask_digits(self.text), "state": self.state, "service": self.service,
            "outcome": self.outcome, "reply": self.reply, "sealed": bool(self.sealed)}
        if self.error:
            line["error"] = self.error
        if mode == "compare":
            line["recorded"] = self.recorded
            line["same"] = self.same
        if mode == "send":
            line["inbound_id"] = self.inbound_id
        return line


_REPORT = """
SELECT file, line, key, sender, shortcode, text, recorded, recorded_sealed, state, service,
       outcome, reply, sealed, inbound_id, error
FROM replay.items WHERE run_id = %s ORDER BY seq
"""


def report_rows(conn: psycopg.Connection, run_id: int) -> Iterator[ReportRow]:
    """Every item of the run in input order, with its result."""
    with conn.cursor(row_factory=class_row(ReportRow)) as cur:
        yield from cur.execute(_REPORT, (run_id,))


@dataclass(slots=True)
class Tally:
    """Counts of one (service, outcome)."""

    total: int = 0
    same: int = 0
    different: int = 0
    unrecorded: int = 0
    failed: int = 0

    def add(self, row: ReportRow) -> None:
        """Count one item."""
        self.total += 1
        if row.state != "done":
            self.failed += 1
        elif row.same is None:
            self.unrecorded += 1
        elif row.same:
            self.same += 1
        else:
            self.different += 1


@dataclass(slots=True)
class Comparison:
    """New replies against recorded ones, by service and outcome, and the first differences."""

    by_group: dict[tuple[str, str], Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)
    differences: list[ReportRow] = field(default_factory=list)

    def render(self, first: int = 10) -> str:
        """The summary table and the first `first` differences."""
        head = f"{'service':<22}{'outcome':<22}{'total':>7}{'same':>7}{'different':>11}" \
               f"{'no recorded':>13}{'failed':>8}"
        lines = [head, "-" * len(head)]

        def row(service: str, outcome: str, t: Tally) -> str:
            return (f"{service:<22}{outcome:<22}{t.total:>7}{t.same:>7}{t.different:>11}"
                    f"{t.unrecorded:>13}{t.failed:>8}")

        for (service, outcome), tally in sorted(self.by_group.items()):
            lines.append(row(service, outcome, tally))
        lines += ["-" * len(head), row("all", "", self.overall)]
        if self.differences:
            lines.append(f"\nfirst differences ({min(first, len(self.differences))} of "
                         f"{self.overall.different}):")
            for d in self.differences[:first]:
                lines += [f"  {d.file}:{d.line}  {d.service or '-'}.{d.outcome}",
                          f"    recorded: {d.recorded}", f"    now:      {d.reply}"]
        return "\n".join(lines)


def compare(rows: Iterable[ReportRow]) -> Comparison:
    """Tally new against recorded replies by the new reply's service and outcome."""
    out = Comparison()
    for r in rows:
        group = (r.service or "-", r.outcome or ("failed" if r.state != "done" else "-"))
        out.by_group.setdefault(group, Tally()).add(r)
        out.overall.add(r)
        if r.same is False:
            out.differences.append(r)
    return out


# ---------------------------------------------------------------- Celery wiring


def queue() -> Queue:
    """The replay queue, bound by its own name like the pipeline's queues."""
    return Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)


def ensure_queue(app: Celery) -> None:
    """Declare the replay queue and route the replay task to it (idempotent)."""
    queues = list(app.conf.task_queues or [])
    if not any(q.name == QUEUE for q in queues):
        app.conf.task_queues = [*queues, queue()]
    routes = dict(app.conf.task_routes or {})
    routes[BATCH] = {"queue": QUEUE}
    app.conf.task_routes = routes


def consumers(app: Celery, timeout_s: float = 1.0) -> list[str]:
    """The names of the workers that consume the replay queue now."""
    found = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return sorted(name for name, queues in found.items()
                  if any(q.get("name") == QUEUE for q in queues))


def send_batch(app: Celery, run_id: int, ids: list[int]) -> None:
    """Enqueue one batch: the run id and item ids, nothing else (Flower shows task arguments)."""
    app.send_task(BATCH, args=[int(run_id), [int(i) for i in ids]], queue=QUEUE)


def register(app: Celery) -> None:
    """Register the replay task on `app`, routed to the `replay` queue; twice is an error."""
    # A mark of our own: `app.tasks` would finalize the app inside create_app.
    if getattr(app, "_govsms_replay", False):
        raise ValueError(f"task {BATCH} registered twice")
    app._govsms_replay = True  # type: ignore[attr-defined]
    ensure_queue(app)

    # Not shared: the task belongs to this app only, not to every app the process creates.
    @app.task(name=BATCH, bind=True, shared=False, max_retries=tasks.STORE_RETRIES,
              ignore_result=True)
    def replay_batch(self: Task, run_id: int, ids: list[int]) -> None:
        """Answer (or send) a batch of one replay run's items."""
        p = self.app.govsms.pipeline
        try:
            done = process(p, run_id, ids, final=self.request.retries >= tasks.STORE_RETRIES)
        except Exception as error:
            log.exception("replay run %s: a batch of %d items failed", run_id, len(ids))
            try:
                fail_items(p, run_id, ids, f"{type(error).__name__} in the replay task")
            except psycopg.Error:
                log.exception("replay run %s: could not mark the batch failed", run_id)
            raise
        if done.outbound:
            try:  # routed to the outbound queue by the app's task_routes
                app.send_task(tasks.DELIVER, args=[done.outbound])
            except Exception as error:  # noqa: BLE001 - kombu and redis raise unrelated types
                log.warning("replay run %s: replies recorded but not enqueued (%s); the "
                            "reconciler takes them", run_id, type(error).__name__)
        if done.unavailable:
            countdown = tasks.backoff(self.request.retries)
            log.warning("replay run %s: %s unavailable; retry in %.1f s", run_id,
                        ", ".join(done.unavailable), countdown)
            raise self.retry(countdown=countdown)
