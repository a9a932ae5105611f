"""The events API clients are called back with (recorded by a trigger on outbound, see
migration 0010): the due ones leased to a sender, then each marked done or due again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import psycopg
from psycopg.rows import dict_row

# Leased for `lease_s`: a sender that dies leaves them due again then, never lost.
_LEASE = """
WITH due AS (
    SELECT id FROM callbacks WHERE done_at IS NULL AND next_at <= %(now)s
    ORDER BY next_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE callbacks c SET next_at = %(now)s + make_interval(secs => %(lease_s)s)
    FROM due WHERE c.id = due.id
    RETURNING c.id, c.event_id, c.client, c.outbound_id, c.event, c.at, c.attempts
)
SELECT l.*, o.part, o.parts, o.service, o.dedupe_key,
       (SELECT f.id FROM outbound f WHERE f.dedupe_key = o.dedupe_key AND f.part = 1) AS first_id
FROM leased l JOIN outbound o ON o.id = l.outbound_id
ORDER BY l.id
"""
_DONE = """
UPDATE callbacks c SET done_at = %(now)s, outcome = r.outcome, attempts = c.attempts + r.tried,
                       last_error = r.error
FROM unnest(%(ids)s::bigint[], %(outcomes)s::text[], %(tried)s::int[], %(errors)s::text[])
    AS r(id, outcome, tried, error)
WHERE c.id = r.id
"""
_AGAIN = """
UPDATE callbacks c SET next_at = r.next_at, attempts = c.attempts + 1, last_error = r.error
FROM unnest(%(ids)s::bigint[], %(next_at)s::timestamptz[], %(errors)s::text[])
    AS r(id, next_at, error)
WHERE c.id = r.id
"""


_LATER = """
UPDATE callbacks c SET next_at = r.next_at
FROM unnest(%(ids)s::bigint[], %(next_at)s::timestamptz[]) AS r(id, next_at)
WHERE c.id = r.id
"""


def later(conn: psycopg.Connection, results: Sequence[tuple[int, dt.datetime]]) -> None:
    """Events not tried this time, due again then: (id, when); no attempt counted."""
    if results:
        ids, when = map(list, zip(*results, strict=True))
        conn.execute(_LATER, {"ids": ids, "next_at": when})


def lease_due(conn: psycopg.Connection, now: dt.datetime, limit: int,
              lease_s: float) -> list[dict]:
    """Up to `limit` due events, leased for `lease_s`, with what their body needs."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_LEASE, {"now": now, "limit": limit, "lease_s": lease_s}).fetchall()


def done(conn: psycopg.Connection, now: dt.datetime,
         results: Sequence[tuple[int, str, int, str | None]]) -> None:
    """Events finished: (id, outcome, attempts made now, last error)."""
    if results:
        ids, outcomes, tried, errors = map(list, zip(*results, strict=True))
        conn.execute(_DONE, {"now": now, "ids": ids, "outcomes": outcomes, "tried": tried,
                             "errors": errors})


def again(conn: psycopg.Connection, results: Sequence[tuple[int, dt.datetime, str]]) -> None:
    """Events to try again: (id, when, why this try failed)."""
    if results:
        ids, when, errors = map(list, zip(*results, strict=True))
        conn.execute(_AGAIN, {"ids": ids, "next_at": when, "errors": errors})


_PURGE = """
DELETE FROM callbacks WHERE id IN (SELECT id FROM callbacks WHERE at < %s ORDER BY id LIMIT %s)
"""


def purge(conn: psycopg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` events made before `before`, sent or not; how many."""
    return conn.execute(_PURGE, (before, limit)).rowcount
