"""The counts behind the Prometheus series, read from the message store at scrape time."""

from __future__ import annotations

import datetime as dt

import psycopg

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Counters must only grow, per label set: a message is counted once routed (its service
# is known then and never changes), a reply once sent or failed, a send attempt as an
# error once it is neither in progress ('sending') nor the one that succeeded.
_ROUTED = """
SELECT shortcode, coalesce(service, 'none'), count(*) FROM inbound WHERE state <> 'received'
GROUP BY 1, 2
"""
_FINISHED = """
SELECT coalesce(service, 'none'), coalesce(outcome, 'none'), state, count(*)
FROM outbound WHERE state IN ('sent', 'failed') GROUP BY 1, 2, 3
"""
_LATENCY = f"""
SELECT {", ".join(f"count(*) FILTER (WHERE s <= {b})" for b in LATENCY_BUCKETS)},
       count(*), coalesce(sum(s), 0)
FROM (SELECT extract(epoch FROM o.sent_at - coalesce(i.received_at, o.created_at)) AS s
      FROM outbound o LEFT JOIN inbound i ON i.id = o.inbound_id
      WHERE o.state = 'sent') AS latency
"""
_DELIVERY = """
SELECT count(*) FILTER (WHERE state = 'sent' AND sent_at > deadline),
       coalesce(sum(attempts), 0) - count(*) FILTER (WHERE state IN ('sent', 'sending'))
FROM outbound
"""
_DEAD = "SELECT task, count(*) FROM dead_letters GROUP BY task"
_SUPPRESSED = """
SELECT reason, count(*) FROM suppressions WHERE created_at >= %s GROUP BY reason ORDER BY 2 DESC
"""
# A client's own SMS (no service of ours wrote them), parts, since a recent time: the
# unpurged rows' index finds them.
_CLIENT_PARTS = """
SELECT client, count(*) FROM outbound
WHERE purged_at IS NULL AND created_at >= %s AND client IS NOT NULL AND service IS NULL
GROUP BY client
"""
# Sent in the last hour, by minute: recent rows are never purged, so their index finds them
# (what was created more than an hour before it was sent is past any deadline anyway).
_SENT_PER_MINUTE = """
SELECT date_trunc('minute', sent_at), count(*) FROM outbound
WHERE purged_at IS NULL AND created_at >= %(since)s - interval '1 hour'
  AND state = 'sent' AND sent_at >= %(since)s
GROUP BY 1 ORDER BY 1
"""


def routed(conn: psycopg.Connection) -> list[tuple[str, str, int]]:
    """Inbound messages once routed: (short code, service or 'none', count)."""
    return conn.execute(_ROUTED).fetchall()


def finished(conn: psycopg.Connection) -> list[tuple[str, str, str, int]]:
    """SMS sent or failed: (service, outcome, state, count), 'none' for a missing label."""
    return conn.execute(_FINISHED).fetchall()


def latency(conn: psycopg.Connection) -> tuple[list[int], int, float]:
    """Received (or created) to sent: (cumulative count per bucket, count, sum of seconds)."""
    *cumulative, count, total = conn.execute(_LATENCY).fetchone()  # type: ignore[misc]
    return cumulative, count, total


def delivery(conn: psycopg.Connection) -> tuple[int, int]:
    """(SMS sent after their deadline, failed send attempts)."""
    breaches, errors = conn.execute(_DELIVERY).fetchone()  # type: ignore[misc]
    return breaches, errors


def dead_by_task(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """Dead letters by the task that gave up: (task, count)."""
    return conn.execute(_DEAD).fetchall()


def suppressed(conn: psycopg.Connection, since: dt.datetime | None = None) -> list[tuple[str, int]]:
    """MOs recorded and never answered, by reason: (reason, count), all or `since` then."""
    return conn.execute(_SUPPRESSED, (since or dt.datetime.min.replace(tzinfo=dt.UTC),)
                        ).fetchall()


def client_parts(conn: psycopg.Connection, since: dt.datetime) -> dict[str, int]:
    """SMS parts each API client sent of its own since `since` (codes not counted)."""
    return dict(conn.execute(_CLIENT_PARTS, (since,)).fetchall())


def sent_per_minute(conn: psycopg.Connection, since: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """SMS parts sent since `since`, by minute: (the minute, count), minutes with none left out."""
    return conn.execute(_SENT_PER_MINUTE, {"since": since}).fetchall()
