"""Figures over the message store: what the reconciler sends again, backlog, fees, SLA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from workers.messages.outbound import REPLY_OF

_STALE_INBOUND = """
SELECT id FROM inbound
WHERE state IN ('received', 'dispatched') AND received_at < now() - make_interval(secs => %s)
ORDER BY received_at LIMIT %s
"""
# A client's own SMS (no service of ours wrote it) is bulk; a one-time code, though a client
# asked for it, is the citizen's and goes with the replies.
_STALE_OUTBOUND = """
SELECT id, client IS NOT NULL AND service IS NULL AS bulk FROM outbound
WHERE (state = 'queued' AND created_at < now() - make_interval(secs => %(age)s))
   OR (state = 'sending' AND claimed_at < now() - make_interval(secs => %(age)s))
ORDER BY created_at LIMIT %(limit)s
"""


_WAITING = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM inbound WHERE state IN ('received', 'dispatched')
                              LIMIT %(limit)s) AS unanswered)
     + (SELECT count(*) FROM (SELECT 1 FROM outbound WHERE state IN ('queued', 'sending')
                              AND inbound_id IS NOT NULL LIMIT %(limit)s) AS unsent)
"""


def waiting(conn: psycopg.Connection, limit: int) -> int:
    """Inbound messages waiting for an answer plus reply parts waiting to be sent, each
    counted up to `limit`."""
    return conn.execute(_WAITING, {"limit": limit}).fetchone()[0]


_FEES = """
SELECT count(*), coalesce(sum(tariff_amount), 0), min(tariff_currency) FROM inbound
WHERE shortcode = %s AND tariff_amount IS NOT NULL AND received_at >= %s AND received_at < %s
"""


def fees(conn: psycopg.Connection, shortcode: str, start: dt.datetime,
         end: dt.datetime) -> tuple[int, int, str | None]:
    """MOs charged on `shortcode` in [start, end): (count, total, currency)."""
    row = conn.execute(_FEES, (shortcode, start, end)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


@dataclass(frozen=True, slots=True)
class Stale:
    """What the reconciler sends again, by the queue each belongs on."""

    inbound: list[int]
    replies: list[int]  # parts for the outbound queue: replies, codes, reminders
    bulk: list[int]  # parts a client sent through the API: the bulk queue


def stale(conn: psycopg.Connection, *, older_than_s: float, limit: int) -> Stale:
    """Inbound messages with no answer and queued SMS not sent, older than `older_than_s`,
    the SMS split by the queue they go back to."""
    inbound = [r[0] for r in conn.execute(_STALE_INBOUND, (older_than_s, limit))]
    replies: list[int] = []
    bulk: list[int] = []
    for outbound_id, is_bulk in conn.execute(_STALE_OUTBOUND,
                                             {"age": older_than_s, "limit": limit}):
        (bulk if is_bulk else replies).append(outbound_id)
    return Stale(inbound, replies, bulk)


_SLA = """
SELECT count(*) FILTER (WHERE state = 'sent'),
       count(*) FILTER (WHERE state = 'sent' AND sent_at <= deadline),
       count(*) FILTER (WHERE state = 'queued' AND deadline < %(now)s)
FROM outbound WHERE created_at >= %(since)s
"""


def sla(conn: psycopg.Connection, since: dt.datetime, now: dt.datetime) -> tuple[int, int, int]:
    """SMS created since `since`: (sent, sent within their deadline, still queued past it)."""
    row = conn.execute(_SLA, {"since": since, "now": now}).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


_RECEIVED_BETWEEN = f"""
SELECT i.received_at, i.sender, i.shortcode, i.text, i.external_id, i.source, i.service,
       r.reply, r.outcome, r.sealed
FROM inbound i {REPLY_OF}
WHERE i.received_at >= %s AND i.received_at < %s AND i.source NOT LIKE 'replay:%%'
  AND i.purged_at IS NULL
ORDER BY i.received_at, i.id
"""


def received_between(conn: psycopg.Connection, since: dt.datetime,
                     until: dt.datetime) -> Iterator[dict[str, Any]]:
    """Inbound messages received in [since, until) with their replies (a sealed one as null),
    read in chunks; those batch replay sent (source `replay:<run>`), and those purged past
    retention, are left out."""
    with conn.transaction(), conn.cursor(name="replay_export", row_factory=dict_row) as cur:
        cur.itersize = 1000
        cur.execute(_RECEIVED_BETWEEN, (since, until))
        yield from cur


# The bench kit's figures: its load is tagged by the inbound `source` (a pattern for LIKE).
_ANSWERED = """
SELECT count(DISTINCT o.inbound_id) FROM outbound o JOIN inbound i ON i.id = o.inbound_id
WHERE i.source = %s AND o.state = 'sent'
"""
_TIMINGS = """
SELECT i.id, extract(epoch FROM i.received_at)::float8,
       extract(epoch FROM min(o.created_at))::float8, extract(epoch FROM min(o.claimed_at))::float8,
       extract(epoch FROM max(o.sent_at))::float8, count(o.sent_at), coalesce(max(o.parts), 0)
FROM inbound i LEFT JOIN outbound o ON o.inbound_id = i.id
WHERE i.source = %s GROUP BY i.id ORDER BY i.id
"""
_UNANSWERED = """
SELECT count(*) FROM inbound i WHERE i.source LIKE %s AND i.state <> 'suppressed' AND NOT EXISTS (
    SELECT 1 FROM outbound o WHERE o.inbound_id = i.id AND o.state IN ('sent', 'failed'))
"""
_INTEGRITY = """
SELECT count(*) AS inbound,
       count(*) FILTER (WHERE r.sent_rows > 0) AS answered,
       count(*) FILTER (WHERE r.sent_rows = 0 AND i.state <> 'suppressed') AS missing,
       count(*) FILTER (WHERE r.sent_rows > r.parts) AS duplicated,
       count(*) FILTER (WHERE r.failed_rows > 0) AS failed,
       count(*) FILTER (WHERE r.resent_rows > 0) AS resent
FROM inbound i
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE o.state = 'sent') AS sent_rows,
           count(*) FILTER (WHERE o.state = 'failed') AS failed_rows,
           count(*) FILTER (WHERE o.attempts > 1 OR o.possible_duplicate) AS resent_rows,
           coalesce(max(o.parts), 1) AS parts
    FROM outbound o WHERE o.inbound_id = i.id) r
WHERE i.source LIKE %s
"""
_IDS_LIKE = "SELECT id FROM inbound WHERE source LIKE %s"
_DEAD_LIKE = """
SELECT count(*) FROM dead_letters d JOIN inbound i ON i.id = d.inbound_id WHERE i.source LIKE %s
"""
_DELIVERED_LIKE = """
SELECT count(*) FROM outbound o JOIN inbound i ON i.id = o.inbound_id
WHERE i.source LIKE %s AND o.delivery = 'delivered'
"""


def answered(conn: psycopg.Connection, source: str) -> int:
    """Inbound messages from `source` with a reply part sent."""
    return conn.execute(_ANSWERED, (source,)).fetchone()[0]  # type: ignore[index]


def timings(conn: psycopg.Connection, source: str) -> list[tuple]:
    """Per inbound message from `source`, in id order: (id, received, first part created,
    first claimed, last sent, as epoch seconds; parts sent, parts)."""
    return conn.execute(_TIMINGS, (source,)).fetchall()


def unanswered(conn: psycopg.Connection, source_like: str) -> int:
    """Inbound messages whose source is LIKE `source_like` with no part sent or failed, and
    not suppressed (those get none, by design)."""
    return conn.execute(_UNANSWERED, (source_like,)).fetchone()[0]  # type: ignore[index]


def integrity(conn: psycopg.Connection,
              source_like: str) -> tuple[int, int, int, int, int, int]:
    """Of the inbound messages LIKE `source_like`: (all, answered, missing a reply (neither
    answered nor suppressed), more parts sent than the reply has, with a failed part, with a
    part handed to the transport more than once: tried again after a failure, or flagged a
    possible duplicate)."""
    return conn.execute(_INTEGRITY, (source_like,)).fetchone()  # type: ignore[return-value]


def inbound_ids(conn: psycopg.Connection, source_like: str) -> set[int]:
    """The ids of the inbound messages whose source is LIKE `source_like`."""
    return {row[0] for row in conn.execute(_IDS_LIKE, (source_like,))}


def dead_letters_of(conn: psycopg.Connection, source_like: str) -> int:
    """Dead letters of inbound messages whose source is LIKE `source_like`."""
    return conn.execute(_DEAD_LIKE, (source_like,)).fetchone()[0]  # type: ignore[index]


def delivered_of(conn: psycopg.Connection, source_like: str) -> int:
    """Reply parts to inbound messages whose source is LIKE `source_like` that a delivery
    report says reached the phone."""
    return conn.execute(_DELIVERED_LIKE, (source_like,)).fetchone()[0]  # type: ignore[index]
