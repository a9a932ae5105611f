"""Personal data past retention: a message's text emptied and its phone number replaced by
its masked form and a keyed digest, `purged_at` set; everything else of the row kept.

Only finished rows are touched (an inbound message answered, dead or suppressed; an SMS
sent or failed): nothing in flight loses the text it is about to need. Each call is one
batch, oldest first, in the caller's transaction: short, so the hot tables are never locked
for long.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg

Masked = Callable[[str], tuple[str, str]]  # a phone number -> (masked, keyed digest)

_INBOUND = """
SELECT id, sender FROM inbound
WHERE purged_at IS NULL AND received_at < %s AND state IN ('answered', 'dead', 'suppressed')
ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED
"""
_PURGE_INBOUND = """
UPDATE inbound SET text = '', sender = p.masked, sender_digest = p.digest, purged_at = now()
FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS p(id, masked, digest)
WHERE inbound.id = p.id
"""
_OUTBOUND = """
SELECT id, recipient FROM outbound
WHERE purged_at IS NULL AND created_at < %s AND state IN ('sent', 'failed')
ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
"""
_PURGE_OUTBOUND = """
UPDATE outbound SET text = '', recipient = p.masked, recipient_digest = p.digest,
                    purged_at = now()
FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS p(id, masked, digest)
WHERE outbound.id = p.id
RETURNING outbound.id
"""
_DUE = """
SELECT (SELECT count(*) FROM inbound WHERE purged_at IS NULL AND received_at < %(before)s
          AND state IN ('answered', 'dead', 'suppressed')),
       (SELECT count(*) FROM outbound WHERE purged_at IS NULL AND created_at < %(before)s
          AND state IN ('sent', 'failed')),
       (SELECT count(*) FROM inbound WHERE purged_at IS NULL AND received_at < %(before)s
          AND state IN ('received', 'dispatched'))
     + (SELECT count(*) FROM outbound WHERE purged_at IS NULL AND created_at < %(before)s
          AND state IN ('queued', 'sending'))
"""


def due(conn: psycopg.Connection, before: dt.datetime) -> tuple[int, int, int]:
    """Rows older than `before` not purged yet: (inbound, outbound, still in flight)."""
    row = conn.execute(_DUE, {"before": before}).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def purge_inbound(conn: psycopg.Connection, before: dt.datetime, limit: int,
                  masked: Masked) -> int:
    """Purge up to `limit` finished inbound messages received before `before`; how many."""
    rows = conn.execute(_INBOUND, (before, limit)).fetchall()
    if rows:
        ids, forms = [r[0] for r in rows], [masked(r[1]) for r in rows]
        conn.execute(_PURGE_INBOUND, (ids, [f[0] for f in forms], [f[1] for f in forms]))
    return len(rows)


def purge_outbound(conn: psycopg.Connection, before: dt.datetime, limit: int,
                   masked: Masked) -> list[int]:
    """Purge up to `limit` SMS sent or failed, created before `before`; their ids."""
    rows = conn.execute(_OUTBOUND, (before, limit)).fetchall()
    if not rows:
        return []
    forms = [masked(r[1]) for r in rows]
    return [r[0] for r in conn.execute(_PURGE_OUTBOUND, (
        [r[0] for r in rows], [f[0] for f in forms], [f[1] for f in forms]))]
