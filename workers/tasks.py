"""The thin tasks: take ids, call a pipeline step, map its classified errors to retry or dead letter."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg
from celery import Celery, Task

from services.errors import StoreUnavailable
from workers import callbacks as client_callbacks
from workers import db, messages, pipeline, retention
from workers.queues import BULK, INBOUND, OUTBOUND, REPLAY
from workers.queues import CALLBACKS as CALLBACKS_QUEUE
from workers.status import count_retry, count_sent

log = logging.getLogger(__name__)

DISPATCH = "govsms.dispatch"
ANSWER = "govsms.answer"
DELIVER = "govsms.deliver"
RECONCILE = "govsms.reconcile"
ROTATE = "govsms.rotate_passwords"
PURGE = "govsms.purge"
CALLBACKS = "govsms.callbacks"
# A purge or callbacks task starts no batch after this long, and sends itself again while
# more is due: no task outlives the visibility timeout.
BACKGROUND_BUDGET_S = 5.0

# Store retries stop this long before the deadline, so "unavailable" still goes out in time.
REPLY_RESERVE_S = 10.0
STORE_RETRIES = 5
# Transport retries run past the SLA: a late reply is still sent (and counted late).
SEND_RETRIES = 10
# No countdown may outlast the visibility timeout, or Redis would redeliver it early.
MAX_COUNTDOWN_S = 16.0
# A task attempt started this often has killed its worker each time: it is poison.
MAX_STARTS = 3
RECONCILE_BATCH = 500


def backoff(retries: int) -> float:
    """Exponential backoff with jitter, capped."""
    return min(2.0 ** retries, MAX_COUNTDOWN_S) * random.uniform(0.8, 1.0)


def send_countdown(retries: int, wait_s: float, deadline: dt.datetime | None,
                   now: dt.datetime) -> float:
    """When to try a send again: backoff with jitter, no later than the deadline while there
    is one ahead, never sooner than a rate limit asked; a late SMS goes on backing off."""
    countdown = backoff(retries)
    if deadline is not None and deadline > now:
        countdown = min(countdown, max((deadline - now).total_seconds(), 0.2))
    return min(max(countdown, wait_s), MAX_COUNTDOWN_S)


class GovsmsTask(Task):
    """Base task: a failure leaves a dead letter; a message that kills its worker is buried.

    Redis hands a message back whenever the process running it dies, so a message
    that kills its process would come back for ever. Each start of a task attempt is
    counted in Redis; past MAX_STARTS the citizen gets the generic reply, and the
    message a dead letter, instead of another run.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        starts = self._starts()
        ids = list(args[-1]) if args else []
        if starts > MAX_STARTS:
            self._bury(ids, f"poison: its worker died {MAX_STARTS} times on it")
            return None
        if starts > 1 and len(ids) > 1:
            self._split(args, ids)
            return None
        return super().__call__(*args, **kwargs)

    def _starts(self) -> int:
        """How often this attempt of the task has started, this time included.

        Only a message Redis handed back is counted (kombu marks each it restores as
        redelivered): a first start costs no round trip, and each redelivery adds one.
        """
        request = self.request
        if not request.id or not self._redelivered():
            return 1
        key = f"govsms:starts:{request.id}:{request.retries}"
        try:
            pipe = self.app.govsms.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 3600)
            starts, _ = pipe.execute()
        except Exception:  # noqa: BLE001 - a counter we cannot keep must not stop the work
            return 2  # back once at least: its batch goes on one message a task
        return int(starts) + 1

    def _redelivered(self) -> bool:
        return bool((self.request.delivery_info or {}).get("redelivered"))

    def _split(self, args: tuple, ids: list[int], why: str = "is back after its worker died"
               ) -> None:
        """A batch that failed goes on as one task per message, so a message that fails or
        kills its worker is dealt with alone and the others of its batch go on."""
        log.warning("%s of %d messages %s: one task each", self.name, len(ids), why)
        for message_id in ids:
            publish(self.app, self.name, [*args[:-1], [message_id]],
                    queue=self._queue(OUTBOUND if self.name == DELIVER else INBOUND))

    def _queue(self, default: str) -> str:
        """The queue this task came from, where its follow-ups belong (bulk parts stay bulk)."""
        return (self.request.delivery_info or {}).get("routing_key") or default

    def _bury(self, ids: list[int], reason: str) -> None:
        p = self.app.govsms.pipeline
        if self.name == DELIVER:
            pipeline.give_up(p.pool, ids, reason)
            return
        outbound = pipeline.bury(p, ids, task=self.name, reason=reason)
        if outbound:
            publish(self.app, DELIVER, [outbound], queue=OUTBOUND)

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict,
                   einfo: Any) -> None:
        """A failed batch goes on as one task per message; a message that failed alone, or a
        batch its store failed, is recorded as dead letters an operator can replay."""
        ids: list[int] = args[-1] if args else []
        # One message's failure (an exception, an overrun, the soft time limit) must not touch
        # the others; a store that stayed down would fail each of them the same way.
        if len(ids) > 1 and not isinstance(exc, StoreUnavailable):
            self._split(args, ids, f"failed ({type(exc).__name__})")
            return
        reason = f"{self.name} failed: {type(exc).__name__}"
        try:
            p = self.app.govsms.pipeline
            if self.name == DELIVER:  # parts not sent are failed, so nothing sends them later
                pipeline.give_up(p.pool, ids, reason)
                return
            with p.pool.connection() as conn:
                for message_id in ids:
                    messages.add_dead_letter(conn, task=self.name, reason=reason,
                                             inbound_id=message_id)
        except Exception:
            log.exception("could not record dead letters for %s %s", self.name, ids)


# Publishing from a task gives up quickly: what is recorded but not enqueued is the
# reconciler's, and a task stuck on a stalled broker would only hit its time limit.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0.5, "interval_step": 0.5}


def publish(app: Celery, task: str, args: list, *, queue: str, countdown: float | None = None,
            ) -> bool:
    """Enqueue a task for work already recorded in PostgreSQL; False if the broker failed."""
    try:
        app.send_task(task, args=args, queue=queue, countdown=countdown, retry=True,
                      retry_policy=PUBLISH_RETRY)
        return True
    except Exception as error:  # noqa: BLE001 - kombu and redis raise unrelated types
        log.warning("%s for %s recorded but not enqueued (%s): the reconciler takes it",
                    task, args[-1] if args else "(nothing)", type(error).__name__)
        return False


def replay_dead_letters(app: Celery, conn: psycopg.Connection,
                        dead_letter_id: int | None = None) -> tuple[int, int, int] | None:
    """Queue one dead letter again (or every open one): the inbound message received again
    as a new message, the failed SMS sent again. (dead letters, messages received again, SMS
    queued again); None when there is no such dead letter. Committed before it enqueues, so
    a worker finds what it is handed; what the broker drops the reconciler takes."""
    letters = messages.dead_letters(conn, dead_letter_id=dead_letter_id)
    if not letters and dead_letter_id is not None:
        return None
    queued: dict[str, list[int]] = {"inbound": [], "outbound": []}
    with conn.transaction():
        for letter in letters:
            replayed = messages.replay_dead_letter(conn, letter)
            if replayed:
                queued[replayed[0]].append(replayed[1])
    if queued["inbound"]:
        publish(app, DISPATCH, [queued["inbound"]], queue=INBOUND)
    if queued["outbound"]:
        publish(app, DELIVER, [queued["outbound"]], queue=OUTBOUND)
    return len(letters), len(queued["inbound"]), len(queued["outbound"])


def register(app: Celery, *, service_queue: Callable[[str], str], outbound_queue: str) -> None:
    """Register the pipeline's tasks on `app`."""

    def send_outbound(ids: list[int]) -> None:
        if ids:
            publish(app, DELIVER, [ids], queue=outbound_queue)

    @app.task(name=DISPATCH, shared=False, base=GovsmsTask, bind=True, max_retries=STORE_RETRIES)
    def dispatch(self: Task, ids: list[int]) -> None:
        """Parse and route inbound messages."""
        try:
            routed = pipeline.dispatch(self.app.govsms.pipeline, ids)
        except StoreUnavailable as error:
            raise self.retry(countdown=backoff(self.request.retries), exc=error) from None
        for service, service_ids in routed.services.items():
            publish(app, ANSWER, [service, routed.deadlines[service], service_ids],
                    queue=service_queue(service))
        send_outbound(routed.outbound)

    @app.task(name=ANSWER, shared=False, base=GovsmsTask, bind=True, max_retries=None)
    def answer(self: Task, service: str, deadline: float, ids: list[int]) -> None:
        """Run one service for inbound messages and queue the replies; retry a store inside the SLA."""
        p = self.app.govsms.pipeline
        try:
            queued = pipeline.answer(p, service, ids)
        except StoreUnavailable as error:
            countdown = backoff(self.request.retries)
            if time.time() + countdown + REPLY_RESERVE_S < deadline:
                log.warning("%s store unavailable (%s); retry in %.1f s", service, error, countdown)
                count_retry(self.app.govsms.redis, "store")
                raise self.retry(countdown=countdown, exc=error) from None
            queued = pipeline.answer_unavailable(p, service, ids, str(error))
        send_outbound(queued)

    @app.task(name=DELIVER, shared=False, base=GovsmsTask, bind=True, max_retries=SEND_RETRIES)
    def deliver(self: Task, ids: list[int]) -> None:
        """Send queued SMS parts through the transport, each once."""
        runtime = self.app.govsms
        # A claim older than the visibility timeout (longer than any task may run) is a
        # sender that died between its submit and the record of it.
        stale_s = runtime.settings.visibility_timeout
        # The batch starts no part after a third of its soft time limit, so the part then
        # in flight ends inside it: a limit hit mid-submit would fail the batch's parts.
        budget_s = min(pipeline.DELIVER_BUDGET_S, (self.app.conf.task_soft_time_limit or 30) / 3)
        try:
            done = pipeline.deliver(runtime.pipeline.pool, runtime.transport,
                                    runtime.pipeline.sealer, ids, stale_s, budget_s)
        except StoreUnavailable as error:  # nothing to give up on: the store comes back
            count_retry(runtime.redis, "store")
            raise self.retry(countdown=backoff(self.request.retries), exc=error) from None
        count_sent(runtime.redis, len(done.sent))  # the drain rate the ingest admits by
        queue = self._queue(outbound_queue)
        if done.busy:  # another sender holds them: look again once its claim may have lapsed
            publish(app, DELIVER, [done.busy], queue=queue, countdown=stale_s)
        if done.later:
            publish(app, DELIVER, [done.later], queue=queue)
        if not done.retry:
            return
        if self.request.retries >= SEND_RETRIES:
            pipeline.give_up(runtime.pipeline.pool, done.retry,
                             f"not sent after {SEND_RETRIES} retries")
            return
        count_retry(runtime.redis, "send")
        countdown = send_countdown(self.request.retries, done.wait_s, done.deadline,
                                   dt.datetime.now(dt.UTC))
        raise self.retry(args=[done.retry], countdown=countdown)

    @app.task(name=ROTATE, shared=False, bind=True)
    def rotate_passwords(self: Task) -> None:
        """Reissue 8188 passwords left unchanged for 3 days, and send the reminders."""
        send_outbound(pipeline.rotate_passwords(self.app.govsms.pipeline,
                                                dt.datetime.now(dt.UTC)))

    @app.task(name=PURGE, shared=False, bind=True, ignore_result=True)
    def purge(self: Task) -> None:
        """Remove the personal data of messages older than GOVSMS_RETENTION_DAYS."""
        runtime = self.app.govsms
        days = runtime.settings.retention_days
        if days <= 0:
            return
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        with db.autocommit(runtime.pipeline.pool) as conn:  # each batch its own transaction
            done = retention.purge(conn, retention.digest_key(runtime.settings.key()), before,
                                   client=runtime.redis, budget_s=BACKGROUND_BUDGET_S)
        if done.more:
            publish(app, PURGE, [], queue=REPLAY)

    @app.task(name=CALLBACKS, shared=False, bind=True, ignore_result=True)
    def callbacks(self: Task) -> None:
        """POST the clients' due callbacks (workers/callbacks.py)."""
        runtime = self.app.govsms
        with db.autocommit(runtime.pipeline.pool) as conn:  # each lease, each record
            sent = client_callbacks.send_due(conn, runtime.settings.api_clients,
                                             runtime.http, budget_s=BACKGROUND_BUDGET_S)
        if sent.more:
            publish(app, CALLBACKS, [], queue=CALLBACKS_QUEUE)

    @app.task(name=RECONCILE, shared=False, bind=True, ignore_result=True)
    def reconcile(self: Task) -> None:
        """Re-enqueue what has sat unanswered or unsent too long: a lost queue loses nothing."""
        p = self.app.govsms.pipeline
        with p.pool.connection() as conn:
            stale = messages.stale(
                conn, older_than_s=self.app.govsms.settings.reconcile_after_s,
                limit=RECONCILE_BATCH)
        if stale.inbound:
            log.warning("reconciler re-enqueues %d inbound messages", len(stale.inbound))
            publish(app, DISPATCH, [stale.inbound], queue=INBOUND)
        if stale.replies:
            log.warning("reconciler re-enqueues %d outbound SMS", len(stale.replies))
            send_outbound(stale.replies)
        if stale.bulk:  # a client's flood must not queue ahead of citizens' replies
            log.warning("reconciler re-enqueues %d client SMS", len(stale.bulk))
            publish(app, DELIVER, [stale.bulk], queue=BULK)
