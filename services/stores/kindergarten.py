"""The kindergarten queue: a child's place in the queue for a pre-school place."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A child's entry in the kindergarten queue."""

    position: int
    kindergarten: str
    applied_on: dt.date


_BY_CHILD = "SELECT position, kindergarten, applied_on FROM kindergarten.queue WHERE child_iin = %s"


def entry_by_child(conn: psycopg.Connection, child_iin: str) -> QueueEntry | None:
    """The queue entry of the child `child_iin`, or None when the child is not in the queue."""
    with conn.cursor(row_factory=class_row(QueueEntry)) as cur:
        return cur.execute(_BY_CHILD, (child_iin,)).fetchone()


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO kindergarten.queue (child_iin, position, kindergarten, applied_on)
VALUES (%(child_iin)s, %(position)s, %(kindergarten)s, %(applied_on)s)
ON CONFLICT (child_iin) DO UPDATE SET position = EXCLUDED.position,
    kindergarten = EXCLUDED.kindergarten, applied_on = EXCLUDED.applied_on
"""

