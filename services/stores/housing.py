"""The housing queue: a person's place in the queue for state housing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A person's entry in the housing queue."""

    position: int
    category: str
    registered_on: dt.date
    authority: str


_ENTRIES_BY_IIN = """
SELECT iin, position, category, registered_on, authority FROM housing.queue WHERE iin = ANY(%s)
"""


def entries_by_iin(conn: psycopg.Connection, iins: Sequence[str]) -> dict[str, QueueEntry]:
    """The housing queue entries of those of `iins` in the queue, by IIN: one query."""
    if not iins:
        return {}
    return {row[0]: QueueEntry(*row[1:])
            for row in conn.execute(_ENTRIES_BY_IIN, (list(iins),))}


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO housing.queue (iin, position, category, registered_on, authority)
VALUES (%(iin)s, %(position)s, %(category)s, %(registered_on)s, %(authority)s)
ON CONFLICT (iin) DO UPDATE SET position = EXCLUDED.position, category = EXCLUDED.category,
    registered_on = EXCLUDED.registered_on, authority = EXCLUDED.authority
"""

