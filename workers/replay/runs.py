"""Runs and items, the checkpoint of a replay in PostgreSQL (the `replay` schema)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row

from workers.replay.readers import Parsed, normalized

MODES = ("dry-run", "compare", "send")


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


def items(conn: psycopg.Connection, run_id: int, ids: Sequence[int]) -> list[Item]:
    """Those of `ids` that are items of the run not done yet, in input order."""
    with conn.cursor(row_factory=class_row(Item)) as cur:
        return cur.execute(_ITEMS, (run_id, list(ids))).fetchall()


def finish(conn: psycopg.Connection, results: Sequence[Result]) -> None:
    """Record each item's outcome, in one transaction; an item done already stays as it was."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_FINISH, [dataclasses.asdict(r) for r in results])


_CLAIM = """
INSERT INTO replay.sent (key, run_id) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING
"""
_SENT_BY = "SELECT run_id, inbound_id FROM replay.sent WHERE key = %s"
_SENT_AS = "UPDATE replay.sent SET inbound_id = %s WHERE key = %s"


def claim_key(conn: psycopg.Connection, key: str, run_id: int) -> tuple[int, int | None]:
    """Claim a message's key for sending, once ever: (the run that holds it, its inbound id)."""
    conn.execute(_CLAIM, (key, run_id))
    owner, inbound_id = conn.execute(_SENT_BY, (key,)).fetchone()  # type: ignore[misc]
    return owner, inbound_id


def sent_as(conn: psycopg.Connection, key: str, inbound_id: int) -> None:
    """The key was sent as the inbound message `inbound_id`."""
    conn.execute(_SENT_AS, (inbound_id, key))


_PURGE_ITEMS = """
DELETE FROM replay.items WHERE id IN (
    SELECT i.id FROM replay.items i JOIN replay.runs r ON r.id = i.run_id
    WHERE r.created_at < %s ORDER BY i.id LIMIT %s)
"""


def purge_items(conn: psycopg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` items (numbers, texts, replies) of runs started before `before`;
    the runs keep their counts. How many."""
    return conn.execute(_PURGE_ITEMS, (before, limit)).rowcount
