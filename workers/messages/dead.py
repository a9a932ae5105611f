"""Dead letters: messages the pipeline gave up on, listed, replayed, described."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

_ADD_DEAD_LETTER = """
WITH dead AS (
    UPDATE inbound SET state = 'dead' WHERE id = %(inbound_id)s AND state <> 'answered'
)
INSERT INTO dead_letters (inbound_id, outbound_id, task, reason)
VALUES (%(inbound_id)s, %(outbound_id)s, %(task)s, %(reason)s)
RETURNING id
"""


def add_dead_letter(conn: psycopg.Connection, *, task: str, reason: str,
                    inbound_id: int | None = None, outbound_id: int | None = None) -> int:
    """Record a message the pipeline gave up on, with the reason an operator will read."""
    row = conn.execute(_ADD_DEAD_LETTER, {"inbound_id": inbound_id, "outbound_id": outbound_id,
                                          "task": task, "reason": reason}).fetchone()
    assert row is not None
    return row[0]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the pipeline gave up on."""

    id: int
    created_at: dt.datetime
    task: str
    reason: str
    inbound_id: int | None
    outbound_id: int | None
    replayed_at: dt.datetime | None


_DEAD_LETTERS = """
SELECT id, created_at, task, reason, inbound_id, outbound_id, replayed_at FROM dead_letters
WHERE (%(all)s OR replayed_at IS NULL) AND (%(id)s::bigint IS NULL OR id = %(id)s)
ORDER BY id
"""


def dead_letters(conn: psycopg.Connection, *, include_replayed: bool = False,
                 dead_letter_id: int | None = None) -> list[DeadLetter]:
    """Open dead letters (or all of them), oldest first; or the one with `dead_letter_id`."""
    with conn.cursor(row_factory=class_row(DeadLetter)) as cur:
        return cur.execute(_DEAD_LETTERS, {"all": include_replayed or dead_letter_id is not None,
                                           "id": dead_letter_id}).fetchall()


# A purged message (past retention: no text, a masked number) is never sent again.
_REQUEUE_OUTBOUND = """
UPDATE outbound SET state = 'queued', error = NULL
WHERE id = %s AND state = 'failed' AND purged_at IS NULL RETURNING id
"""
# A replayed inbound message is a new message (its own reply), once per dead letter.
_REPLAY_INBOUND = """
INSERT INTO inbound (source, external_id, sender, shortcode, text)
SELECT 'replay', 'dead-letter:' || %(dead)s, sender, shortcode, text FROM inbound
WHERE id = %(id)s AND purged_at IS NULL
ON CONFLICT (source, external_id) DO NOTHING
RETURNING id
"""
_MARK_REPLAYED = "UPDATE dead_letters SET replayed_at = now() WHERE id = %s AND replayed_at IS NULL"


def replay_dead_letter(conn: psycopg.Connection, letter: DeadLetter) -> tuple[str, int] | None:
    """Queue a dead letter again: ("outbound", id) to send, ("inbound", id) to dispatch, or None.

    A failed SMS goes back to the queue as it was; an inbound message is received
    again as a new message, so it gets a reply of its own even if it had one.
    """
    conn.execute(_MARK_REPLAYED, (letter.id,))
    if letter.outbound_id is not None:
        row = conn.execute(_REQUEUE_OUTBOUND, (letter.outbound_id,)).fetchone()
        return ("outbound", row[0]) if row else None
    if letter.inbound_id is not None:
        row = conn.execute(_REPLAY_INBOUND, {"dead": letter.id, "id": letter.inbound_id}).fetchone()
        return ("inbound", row[0]) if row else None
    return None


_DESCRIBE = {
    "inbound": "SELECT sender, shortcode, CASE WHEN purged_at IS NOT NULL THEN '(purged)' "
               "ELSE text END AS text, received_at, service, state FROM inbound WHERE id = %s",
    "outbound": "SELECT sender, recipient, CASE WHEN purged_at IS NOT NULL THEN '(purged)' "
                "WHEN sealed THEN '(sealed)' ELSE text END AS text,"
                " state, attempts, error FROM outbound WHERE id = %s",
}


def describe(conn: psycopg.Connection, table: str, message_id: int) -> dict:
    """A message's fields for an operator (a sealed text stays hidden, a purged one says so)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(_DESCRIBE[table], (message_id,)).fetchone() or {}


_OPEN_DEAD = "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL"


def open_dead_letters(conn: psycopg.Connection) -> int:
    """Dead letters not replayed yet."""
    row = conn.execute(_OPEN_DEAD).fetchone()
    assert row is not None
    return row[0]
