"""What the operators look at: queue depths, workers, retries, the Prometheus metrics.

Counts come from PostgreSQL (the record of truth, the same whichever process
asks; their SQL is in workers/messages/), queue depths from Redis, retries from
counters the tasks keep in Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import redis
from celery import Celery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from workers.messages import dead, metrics
from workers.messages.metrics import LATENCY_BUCKETS

RETRIES_KEY = "govsms:metrics:retries"
SENT_KEY = "govsms:metrics:sent:{}"  # SMS parts sent in that second (Unix time), kept 2 min
DRAIN_WINDOW_S = 5  # the drain rate is that of the last full seconds of this many
NO_GATEWAY = ("no gateway to ask: start `govsms run` (it writes {data_dir}/runtime.json) or "
              "set GOVSMS_REDIS_URL and GOVSMS_DATABASE_URL")


def count_retry(client: redis.Redis, kind: str) -> None:
    """One more retry of `kind` (store, send); best effort, never fails the caller."""
    try:
        client.hincrby(RETRIES_KEY, kind, 1)
    except redis.RedisError:
        pass


def count_sent(client: redis.Redis, parts: int, now: float | None = None) -> None:
    """`parts` more SMS parts handed to the transport this second; best effort."""
    if parts:
        key = SENT_KEY.format(int(time.time() if now is None else now))
        try:
            client.pipeline(transaction=False).incrby(key, parts).expire(key, 120).execute()
        except redis.RedisError:
            pass


def drain_rate(client: redis.Redis, now: float | None = None) -> float:
    """SMS parts handed to the transport per second, by every sender, over the last
    DRAIN_WINDOW_S full seconds."""
    second = int(time.time() if now is None else now)
    keys = [SENT_KEY.format(second - n) for n in range(1, DRAIN_WINDOW_S + 1)]
    return sum(int(v) for v in client.mget(keys) if v is not None) / DRAIN_WINDOW_S


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


class GatewayCollector(Collector):
    """Prometheus metrics computed at scrape time from PostgreSQL and Redis."""

    def __init__(self, pool: ConnectionPool, client: redis.Redis, queues: Sequence[str]) -> None:
        self._pool, self._redis, self._queues = pool, client, queues

    def collect(self) -> Iterator:
        """Every series, read fresh."""
        with self._pool.connection() as conn:
            inbound = CounterMetricFamily("govsms_inbound", "Inbound messages, once routed",
                                          labels=["shortcode", "service"])
            for shortcode, service, n in metrics.routed(conn):
                inbound.add_metric([shortcode, service], n)
            replies = CounterMetricFamily("govsms_replies", "SMS sent or failed, by outcome",
                                          labels=["service", "outcome", "state"])
            for service, outcome, state, n in metrics.finished(conn):
                replies.add_metric([service, outcome, state], n)
            cumulative, count, total = metrics.latency(conn)
            latency = HistogramMetricFamily("govsms_reply_latency_seconds",
                                            "Received (or created) to sent")
            buckets = [(str(b), n) for b, n in zip(LATENCY_BUCKETS, cumulative)]
            latency.add_metric([], buckets + [("+Inf", count)], float(total))
            breaches, errors = metrics.delivery(conn)
            dead_letters = CounterMetricFamily("govsms_dead_letters", "Dead letters",
                                               labels=["task"])
            for task, n in metrics.dead_by_task(conn):
                dead_letters.add_metric([task], n)
            open_dead = dead.open_dead_letters(conn)
            suppressed = CounterMetricFamily("govsms_suppressed", "MOs recorded and never "
                                             "answered, by reason", labels=["reason"])
            for reason, n in metrics.suppressed(conn):
                suppressed.add_metric([reason], n)
        yield from (inbound, replies, latency, dead_letters, suppressed)
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
