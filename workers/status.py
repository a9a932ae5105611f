"""What the operators look at: queue depths, workers, retries, the Prometheus metrics.

Counts come from PostgreSQL (the record of truth, the same whichever process
asks; their SQL is in workers/messages/), queue depths from Redis, retries from
counters the tasks keep in Redis.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import redis
from celery import Celery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from workers.messages import dead, metrics
from workers.messages.metrics import LATENCY_BUCKETS

RETRIES_KEY = "govsms:metrics:retries"
NO_GATEWAY = ("no gateway to ask: start `govsms run` (it writes {data_dir}/runtime.json) or "
              "set GOVSMS_REDIS_URL and GOVSMS_DATABASE_URL")


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
        yield from (inbound, replies, latency, dead_letters)
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
