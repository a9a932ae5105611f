"""The housing queue: a person's place in the queue for state housing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A person's entry in the housing queue."""

    position: int
    category: str
    registered_on: dt.date
    authority: str


_ENTRY_BY_IIN = """
SELECT position, category, registered_on, authority FROM housing.queue WHERE iin = %s
"""


def entry_by_iin(conn: psycopg.Connection, iin: str) -> QueueEntry | None:
    """The housing queue entry of `iin`, or None when that person is not in the queue."""
    with conn.cursor(row_factory=class_row(QueueEntry)) as cur:
        return cur.execute(_ENTRY_BY_IIN, (iin,)).fetchone()


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO housing.queue (iin, position, category, registered_on, authority)
VALUES (%(iin)s, %(position)s, %(category)s, %(registered_on)s, %(authority)s)
ON CONFLICT (iin) DO UPDATE SET position = EXCLUDED.position, category = EXCLUDED.category,
    registered_on = EXCLUDED.registered_on, authority = EXCLUDED.authority
"""

