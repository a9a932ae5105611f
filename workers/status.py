"""What the operators look at: queue depths, workers, SLA compliance, dead letters, metrics.

Counts come from PostgreSQL (the record of truth, the same whichever process
asks), queue depths from Redis, retries from counters the tasks keep in Redis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import psycopg
import redis
from celery import Celery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

RETRIES_KEY = "govsms:metrics:retries"
NO_GATEWAY = ("no gateway to ask: start `govsms run` (it writes {data_dir}/runtime.json) or "
              "set GOVSMS_REDIS_URL and GOVSMS_DATABASE_URL")
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def count_retry(client: redis.Redis, kind: str) -> None:
    """One more retry of `kind` (store, send); best effort, never fails the caller."""
    try:
        client.hincrby(RETRIES_KEY, kind, 1)
    except redis.RedisError:
        pass


def queue_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting in each queue."""
    pipe = client.pipeline()
    for queue in queues:
        pipe.llen(queue)
    return dict(zip(queues, pipe.execute()))


def workers_alive(celery: Celery, timeout_s: float = 1.0) -> list[str]:
    """The node names of the workers that answer a ping."""
    replies = celery.control.ping(timeout=timeout_s) or []
    return sorted(name for reply in replies for name in reply)


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


_OPEN_DEAD = "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL"


def open_dead_letters(conn: psycopg.Connection) -> int:
    """Dead letters not replayed yet."""
    row = conn.execute(_OPEN_DEAD).fetchone()
    assert row is not None
    return row[0]


# Counters must only grow, per label set: a message is counted once routed (its service
# is known then and never changes), a reply once sent or failed, a send attempt as an
# error once it is neither in progress ('sending') nor the one that succeeded.
_INBOUND = """
SELECT shortcode, coalesce(service, 'none'), count(*) FROM inbound WHERE state <> 'received'
GROUP BY 1, 2
"""
_REPLIES = """
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


class GatewayCollector(Collector):
    """Prometheus metrics computed at scrape time from PostgreSQL and Redis."""

    def __init__(self, pool: ConnectionPool, client: redis.Redis, queues: Sequence[str]) -> None:
        self._pool, self._redis, self._queues = pool, client, queues

    def collect(self) -> Iterator:
        """Every series, read fresh."""
        with self._pool.connection() as conn:
            inbound = CounterMetricFamily("govsms_inbound", "Inbound messages, once routed",
                                          labels=["shortcode", "service"])
            for shortcode, service, n in conn.execute(_INBOUND):
                inbound.add_metric([shortcode, service], n)
            replies = CounterMetricFamily("govsms_replies", "SMS sent or failed, by outcome",
                                          labels=["service", "outcome", "state"])
            for service, outcome, state, n in conn.execute(_REPLIES):
                replies.add_metric([service, outcome, state], n)
            *cumulative, count, total = conn.execute(_LATENCY).fetchone()
            latency = HistogramMetricFamily("govsms_reply_latency_seconds",
                                            "Received (or created) to sent")
            buckets = [(str(b), n) for b, n in zip(LATENCY_BUCKETS, cumulative)]
            latency.add_metric([], buckets + [("+Inf", count)], float(total))
            breaches, errors = conn.execute(_DELIVERY).fetchone()
            dead = CounterMetricFamily("govsms_dead_letters", "Dead letters", labels=["task"])
            for task, n in conn.execute(_DEAD):
                dead.add_metric([task], n)
            open_dead = open_dead_letters(conn)
        yield from (inbound, replies, latency, dead)
        yield CounterMetricFamily("govsms_sla_breaches", "SMS sent after their deadline",
                                  value=breaches)
        yield CounterMetricFamily("govsms_transport_errors", "Failed send attempts",
                                  value=errors)
        yield GaugeMetricFamily("govsms_dead_letters_open", "Dead letters not replayed",
                                value=open_dead)
        retries = CounterMetricFamily("govsms_retries", "Task retries", labels=["kind"])
        counted = {k.decode(): int(n) for k, n in self._redis.hgetall(RETRIES_KEY).items()}
        for kind, n in ({"store": 0, "send": 0} | counted).items():
            retries.add_metric([kind], n)
        yield retries
        depth = GaugeMetricFamily("govsms_queue_depth", "Messages waiting", labels=["queue"])
        for queue, n in queue_depths(self._redis, self._queues).items():
            depth.add_metric([queue], n)
        yield depth
