"""What the operators look at: queue depths, workers, retries, the Prometheus metrics.

Counts come from PostgreSQL (the record of truth, the same whichever process
asks; their SQL is in workers/messages/), queue depths from Redis, retries from
counters the tasks keep in Redis.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import psycopg
import redis
from celery import Celery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from services.stores import clients
from workers.messages import dead, metrics, reports
from workers.messages.metrics import LATENCY_BUCKETS
from workers.queues import all_queues
from workers.settings import Settings

RETRIES_KEY = "govsms:metrics:retries"
REFUSED_KEY = "govsms:metrics:refused"  # field "client:reason": requests the client API refused
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


def count_refusal(client: redis.Redis, api_client: str, reason: str) -> None:
    """One more request of `api_client` refused for `reason`; best effort."""
    try:
        client.hincrby(REFUSED_KEY, f"{api_client}:{reason}", 1)
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


# SMS pumping, seen: a client whose last hour holds VOLUME_JUMP times its usual hour (its
# parts a day over the USUAL_DAYS before today, spread over their hours; never less than
# VOLUME_FLOOR, so a quiet client's first campaign is not taken for one) raises an alert.
VOLUME_JUMP = 10.0
VOLUME_FLOOR = 50.0
USUAL_DAYS = 7


@dataclass(frozen=True, slots=True)
class ClientFigures:
    """What an operator sees of one API client: its day against its quota, what the API
    refused it, and its last hour against its usual one."""

    name: str
    messages_today: int
    parts_today: int
    max_messages: int
    max_parts: int
    refused: dict[str, int]
    last_hour: int
    usual_hour: float

    @property
    def volume_ratio(self) -> float:
        return self.last_hour / max(self.usual_hour, VOLUME_FLOOR)

    @property
    def volume_jump(self) -> bool:
        return self.volume_ratio >= VOLUME_JUMP


def client_figures(conn: psycopg.Connection, client: redis.Redis, settings: Settings,
                   now: dt.datetime) -> list[ClientFigures]:
    """Every configured API client's figures (ClientFigures), by name."""
    usage = clients.usage(conn, now.astimezone(dt.UTC).date(), USUAL_DAYS)
    hour = metrics.client_parts(conn, now - dt.timedelta(hours=1))
    refused: dict[str, dict[str, int]] = {}
    for field, n in client.hgetall(REFUSED_KEY).items():
        name, _, reason = field.decode().partition(":")
        refused.setdefault(name, {})[reason] = int(n)
    figures = []
    for name in sorted(settings.api_clients):
        messages, parts, before = usage.get(name, (0, 0, 0))
        figures.append(ClientFigures(name, messages, parts, *settings.quota(name),
                                     refused.get(name, {}), hour.get(name, 0),
                                     before / (USUAL_DAYS * 24)))
    return figures


@dataclass(frozen=True, slots=True)
class Picture:
    """The SLA picture: what `govsms status` prints and the console's first page shows."""

    at: dt.datetime
    queues: dict[str, int]
    workers: list[str]
    sent: int  # SMS created in the last hour and sent...
    in_time: int  # ...of them, within their deadline
    overdue: int  # still queued past it
    dead_letters: int  # not replayed
    suppressed: list[tuple[str, int]]  # last hour, by reason
    sent_per_minute: list[tuple[dt.datetime, int]]  # last hour; minutes with none left out
    clients: list[ClientFigures]

    @property
    def in_time_share(self) -> float | None:
        """Share of the last hour's SMS sent within their deadline (None: none sent)."""
        return self.in_time / self.sent if self.sent else None


def picture(conn: psycopg.Connection, client: redis.Redis, celery: Celery, settings: Settings,
            now: dt.datetime) -> Picture:
    """The SLA picture now: PostgreSQL's counts, Redis's queues, the workers that answer."""
    hour_ago = now - dt.timedelta(hours=1)
    sent, in_time, overdue = reports.sla(conn, hour_ago, now)
    return Picture(at=now, queues=queue_depths(client, all_queues(settings)),
                   workers=workers_alive(celery), sent=sent, in_time=in_time, overdue=overdue,
                   dead_letters=dead.open_dead_letters(conn),
                   suppressed=metrics.suppressed(conn, hour_ago),
                   sent_per_minute=metrics.sent_per_minute(conn, hour_ago),
                   clients=client_figures(conn, client, settings, now))


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

    def __init__(self, pool: ConnectionPool, client: redis.Redis, queues: Sequence[str],
                 settings: Settings) -> None:
        self._pool, self._redis, self._queues = pool, client, queues
        self._settings = settings

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
            api = client_figures(conn, self._redis, self._settings, dt.datetime.now(dt.UTC))
        yield from (inbound, replies, latency, dead_letters, suppressed)
        yield from _client_series(api)
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


_CLIENT_GAUGES: tuple[tuple[str, str, Callable[[ClientFigures], float]], ...] = (
    ("messages_today", "Messages the client sent today (UTC)", lambda f: f.messages_today),
    ("parts_today", "SMS parts the client sent today (UTC)", lambda f: f.parts_today),
    ("quota_messages", "Messages the client may send a day", lambda f: f.max_messages),
    ("quota_parts", "SMS parts the client may send a day", lambda f: f.max_parts),
    ("volume_ratio", "The client's parts in the last hour against its usual hour",
     lambda f: round(f.volume_ratio, 3)),
    ("volume_jump", "1 while the client's last hour is far above its usual rate",
     lambda f: int(f.volume_jump)),
)


def _client_series(figures: Sequence[ClientFigures]) -> Iterator:
    """The API clients' series: the day against the quota, refusals, the volume alert."""
    for name, text, value in _CLIENT_GAUGES:
        gauge = GaugeMetricFamily(f"govsms_client_{name}", text, labels=["client"])
        for f in figures:
            gauge.add_metric([f.name], value(f))
        yield gauge
    refused = CounterMetricFamily("govsms_client_refused", "Client API requests refused",
                                  labels=["client", "reason"])
    for f in figures:
        for reason, n in sorted(f.refused.items()):
            refused.add_metric([f.name, reason], n)
    yield refused
