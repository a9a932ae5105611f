"""The kindergarten queue: a child's place in the queue for a pre-school place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A child's entry in the kindergarten queue."""

    position: int
    kindergarten: str
    applied_on: dt.date


_BY_CHILD = """
SELECT child_iin, position, kindergarten, applied_on FROM kindergarten.queue
WHERE child_iin = ANY(%s)
"""


def entries_by_child(conn: psycopg.Connection,
                     child_iins: Sequence[str]) -> dict[str, QueueEntry]:
    """The queue entries of those of `child_iins` in the queue, by the child's IIN: one query."""
    if not child_iins:
        return {}
    return {row[0]: QueueEntry(*row[1:])
            for row in conn.execute(_BY_CHILD, (list(child_iins),))}


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO kindergarten.queue (child_iin, position, kindergarten, applied_on)
VALUES (%(child_iin)s, %(position)s, %(kindergarten)s, %(applied_on)s)
ON CONFLICT (child_iin) DO UPDATE SET position = EXCLUDED.position,
    kindergarten = EXCLUDED.kindergarten, applied_on = EXCLUDED.applied_on
"""

