"""The Celery app's factory: routes, schedule, the delivery guarantees of the broker, and
the per-process runtime its tasks use.

Building an app is explicit (`create_app(settings)`): importing this module builds none,
reads no settings and registers nothing. The queues are named in workers/queues.py; the
one app of a worker process is built by its `celery -A workers.celery_app` entry.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from typing import Any

import httpx
import redis
from celery import Celery
from celery.schedules import crontab
from celery.signals import setup_logging
from celery.utils.serialization import strtobool
from celery.worker import control as worker_control
from kombu import Exchange, Queue

from parsers import KeywordIndex
from replies.masking import redact_secrets
from replies.sealing import Sealer, derive
from replies.templates import Templates
from replies.transports import Transport, from_url
from services import account_registration
from services.registry import default_registry
from workers import db, logs, redis_urls, tasks
from workers.pipeline import Pipeline
from workers.queues import BULK, CALLBACKS, INBOUND, OUTBOUND, REPLAY, service_queue
from workers.queues import services as _services
from workers.replay import task as replay_task
from workers.settings import Settings, load_settings
from workers.suppression import Guard


class Runtime:
    """Per-process resources, built on first use in the process that uses them.

    Celery's parent process may touch them too (it runs `on_failure` after a hard
    time limit) and then forks new pool processes: a child that finds resources
    made by another process builds its own, and keeps the inherited ones alive but
    unused, so that their connections, shared with the parent, are never closed or
    used from two processes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pid = os.getpid()
        self._built: dict[str, Any] = {}
        self._inherited: list[Any] = []
        self._lock = threading.RLock()  # a thread pool's tasks build each resource once

    def _get(self, name: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.append(self._built)
                self._built, self._pid = {}, os.getpid()
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    @property
    def pipeline(self) -> Pipeline:
        """Pool, parser index, registry and templates of this process."""
        return self._get("pipeline", self._pipeline)

    def _pipeline(self) -> Pipeline:
        registry = default_registry()
        return Pipeline(
            pool=db.create_pool(
                self.settings.database_url or "",
                statement_timeout_ms=self.settings.statement_timeout_ms,
                transaction_pooler=self.settings.database_transaction_pooler),
            index=KeywordIndex.build(registry, self.settings.shortcodes),
            registry=registry,
            templates=Templates.load(self.settings.templates),
            sla=dt.timedelta(seconds=self.settings.sla_seconds),
            sealer=Sealer(self.settings.key()),
            senders=senders(self.settings),
            guard=guard(self.settings, self.redis),
        )

    @property
    def redis(self) -> redis.Redis:
        """A Redis client for counters, apart from the broker's connections."""
        return self._get("redis", lambda: redis_urls.client(self.settings.redis_url or "",
                                                             socket_timeout=2))

    @property
    def http(self) -> httpx.Client:
        """An HTTP client for the clients' callbacks, its connections kept alive."""
        return self._get("http", lambda: httpx.Client(follow_redirects=False))

    @property
    def transport(self) -> Transport:
        """The outbound transport of this process."""
        # With the Redis URL, an SMPP link's rate limit is shared by every process on it.
        return self._get("transport", lambda: from_url(
            self.settings.transport_url, redis_url=self.settings.redis_url,
            connect=lambda url: redis_urls.client(url, socket_timeout=5)))


def create_app(settings: Settings, *, broker_timeout_s: float = 5.0) -> Celery:
    """A Celery app for `settings`, with every task registered; `broker_timeout_s` bounds
    each read from Redis (the ingest's is shorter: a bridge waits on its publish)."""
    broker, sentinel_options = redis_urls.celery_broker(settings.redis_url or "")
    app = Celery("govsms", broker=broker, set_as_current=False)
    services = _services(settings)
    # RedBeat keeps the schedule in Redis under a lock: a second beat waits, it does not
    # send the same periodic task again. A beat that died frees the lock in 30 s.
    redbeat_conf = redis_urls.redbeat(settings.redis_url or "")
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged after it ran; if its process dies, the message goes back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Redis redelivers what a dead worker held after the visibility timeout; keep it
        # well inside the 60 s SLA and longer than any task may run or wait (see README).
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Look for what a dead worker held every 5 s (kombu's default is about 100 s),
            # so a redelivery lands within visibility timeout + 5 s.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 2,
            "socket_timeout": broker_timeout_s,
            **sentinel_options,  # through Sentinel: the master's name, the sentinels' login
        },
        broker_connection_retry_on_startup=True,
        task_time_limit=max(settings.visibility_timeout - 5, 5),
        task_soft_time_limit=max(settings.visibility_timeout - 10, 3),
        # Publishing gives up after a few tries; tasks and the ingest give up sooner still
        # (tasks.PUBLISH_RETRY): what is recorded but not enqueued is the reconciler's.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.5},
        task_default_queue=INBOUND,
        task_queues=[_queue(INBOUND), _queue(OUTBOUND), _queue(BULK), _queue(REPLAY),
                     _queue(CALLBACKS),
                     *(_queue(service_queue(s)) for s in services)],
        task_routes={tasks.DISPATCH: {"queue": INBOUND}, tasks.DELIVER: {"queue": OUTBOUND},
                     tasks.RECONCILE: {"queue": INBOUND}, tasks.PURGE: {"queue": REPLAY},
                     tasks.CALLBACKS: {"queue": CALLBACKS},
                     tasks.ROTATE: {"queue": service_queue(account_registration.NAME)}},
        worker_prefetch_multiplier=4,
        # Task events for Flower; tasks carry ids only, so it never shows personal data.
        # The workers' own (received, started, succeeded) cost three Redis publishes per
        # task: off by default, Flower turns them on while it watches. A publisher's
        # `task-sent` is one more publish per task, and no control command turns it on
        # later: only with the setting (Flower shows a task from its `task-received`).
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_hijack_root_logger=False,
        beat_schedule=_schedule(settings, services),
        beat_scheduler="workers.beat:Scheduler",
        **redbeat_conf,
        redbeat_key_prefix="govsms:beat:",
        redbeat_lock_timeout=30,
        beat_max_loop_interval=5,
        timezone="UTC",
    )
    app.govsms = Runtime(settings)  # type: ignore[attr-defined]
    tasks.register(app, service_queue=service_queue, outbound_queue=OUTBOUND)
    replay_task.register(app)
    return app


CALLBACKS_EVERY_S = 2.0  # how soon a client hears of a final state, at the latest


def _queue(name: str) -> Queue:
    # Each queue bound by its own name, not all to the default exchange and key.
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def _schedule(settings: Settings, services: list[str]) -> dict[str, dict]:
    schedule = {"reconcile": {"task": tasks.RECONCILE, "schedule": settings.reconcile_every_s}}
    if account_registration.NAME in services:
        schedule["rotate-passwords"] = {"task": tasks.ROTATE,
                                        "schedule": settings.rotate_every_s}
    if settings.api_clients:  # their callbacks, or, without a callback_url, none
        schedule["callbacks"] = {"task": tasks.CALLBACKS, "schedule": CALLBACKS_EVERY_S}
    if settings.retention_days > 0:  # at night in Kazakhstan and Vietnam
        schedule["purge"] = {"task": tasks.PURGE, "schedule": crontab(minute=0, hour=21)}
    return schedule


def guard(settings: Settings, client: redis.Redis | None) -> Guard:
    """Which MOs get no reply (workers/suppression.py), counted in `client`."""
    return Guard(frozenset(settings.shortcodes), client, derive(settings.key(), "govsms/flood"),
                 per_phone=settings.flood_limit,
                 window_s=settings.flood_window_s, repeat_s=settings.repeat_window_s)


def senders(settings: Settings) -> dict[str, str]:
    """The short code each service sends its own SMS from: the first that offers it."""
    found: dict[str, str] = {}
    for code, names in settings.shortcodes.items():
        for name in names:
            found.setdefault(name, code)
    return found


def censored(value: Any) -> Any:
    """`value` with every URL's password and secret parameter redacted, at any depth."""
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {key: censored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [censored(item) for item in value]
    return value


# What Flower (and `celery inspect conf`) shows of a worker's configuration. Celery
# censors only keys named like API, TOKEN, KEY, SECRET, PASS..., and broker_url:
# `redbeat_redis_url` holds the broker's password too. Replaces Celery's own `conf` once
# `worker_hooks()` registered it.
def conf(state: Any, with_defaults: bool = False, **_: Any) -> dict[str, Any]:
    """The worker's configuration, credentials of every URL in it censored."""
    return worker_control.jsonify(
        censored(state.app.conf.table(with_defaults=with_defaults, censored=True)),
        keyfilter=worker_control._wanted_config_key,
        unknown_type_filter=worker_control.safe_repr)


def configure_logging(**_: object) -> None:
    """Celery's `setup_logging` receiver: our logging, which masks personal data, not Celery's."""
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)


def worker_hooks() -> None:
    """Connect what a worker process needs: our logging set-up, the censored `conf` command.

    Called by the `celery -A` entries only (workers/celery_app.py), never on import.
    """
    setup_logging.connect(configure_logging, weak=False, dispatch_uid="govsms.logging")
    worker_control.inspect_command(alias="dump_conf", signature="[include_defaults=False]",
                                   args=[("with_defaults", strtobool)])(conf)
