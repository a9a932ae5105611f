"""The replay task on the `replay` queue: thin, ids only; `register(app)` puts it on an app."""

from __future__ import annotations

import logging

import psycopg
from celery import Celery, Task
from kombu import Exchange, Queue

from workers import tasks
from workers.queues import REPLAY as QUEUE
from workers.replay.answering import fail_items, process

log = logging.getLogger(__name__)

BATCH = "govsms.replay.batch"


def queue() -> Queue:
    """The replay queue, bound by its own name like the pipeline's queues."""
    return Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)


def ensure_queue(app: Celery) -> None:
    """Declare the replay queue and route the replay task to it (idempotent)."""
    queues = list(app.conf.task_queues or [])
    if not any(q.name == QUEUE for q in queues):
        app.conf.task_queues = [*queues, queue()]
    routes = dict(app.conf.task_routes or {})
    routes[BATCH] = {"queue": QUEUE}
    app.conf.task_routes = routes


def consumers(app: Celery, timeout_s: float = 1.0) -> list[str]:
    """The names of the workers that consume the replay queue now."""
    found = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return sorted(name for name, queues in found.items()
                  if any(q.get("name") == QUEUE for q in queues))


def send_batch(app: Celery, run_id: int, ids: list[int]) -> None:
    """Enqueue one batch: the run id and item ids, nothing else (Flower shows task arguments)."""
    app.send_task(BATCH, args=[int(run_id), [int(i) for i in ids]], queue=QUEUE)


def register(app: Celery) -> None:
    """Register the replay task on `app`, routed to the `replay` queue; twice is an error."""
    # A mark of our own: `app.tasks` would finalize the app inside create_app.
    if getattr(app, "_govsms_replay", False):
        raise ValueError(f"task {BATCH} registered twice")
    app._govsms_replay = True  # type: ignore[attr-defined]
    ensure_queue(app)

    # Not shared: the task belongs to this app only, not to every app the process creates.
    @app.task(name=BATCH, bind=True, shared=False, max_retries=tasks.STORE_RETRIES,
              ignore_result=True)
    def replay_batch(self: Task, run_id: int, ids: list[int]) -> None:
        """Answer (or send) a batch of one replay run's items."""
        p = self.app.govsms.pipeline
        try:
            done = process(p, run_id, ids, final=self.request.retries >= tasks.STORE_RETRIES)
        except Exception as error:
            log.exception("replay run %s: a batch of %d items failed", run_id, len(ids))
            try:
                fail_items(p, run_id, ids, f"{type(error).__name__} in the replay task")
            except psycopg.Error:
                log.exception("replay run %s: could not mark the batch failed", run_id)
            raise
        if done.outbound:
            try:  # routed to the outbound queue by the app's task_routes
                app.send_task(tasks.DELIVER, args=[done.outbound])
            except Exception as error:  # noqa: BLE001 - kombu and redis raise unrelated types
                log.warning("replay run %s: replies recorded but not enqueued (%s); the "
                            "reconciler takes them", run_id, type(error).__name__)
        if done.unavailable:
            countdown = tasks.backoff(self.request.retries)
            log.warning("replay run %s: %s unavailable; retry in %.1f s", run_id,
                        ", ".join(done.unavailable), countdown)
            raise self.retry(countdown=countdown)
