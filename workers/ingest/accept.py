"""Accepting inbound messages, whichever door they came through: each recorded once in
PostgreSQL and its id enqueued on Redis before the caller hears it was taken.

If either fails the caller is told to retry (Unavailable): the bridge gets 503, the SMSC
over SMPP a temporary error, and both send the message again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg
from celery import Celery
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from replies.masking import mask_digits
from services.phones import to_e164
from workers import messages, status
from workers.logs import correlation
from workers.queues import INBOUND
from workers.settings import Settings
from workers.tasks import DISPATCH, publish

log = logging.getLogger(__name__)

MAX_BATCH = 500
BACKLOG_CHECK_S = 1.0
# Admitted whatever the drain rate: a gateway that has sent little lately (it was quiet)
# must not refuse the start of a burst; the rate it then sends at raises the limit. About
# what the pipeline holds in flight at full speed (700 MOs a second through Kannel, half a
# second to a second each): with 200, each burst's first seconds were refused and Kannel's
# retries, 5 s later, stalled it.
BACKLOG_FLOOR = 1000
DEFAULT_SOURCE = "http"
Item = TypeVar("Item")
Result = TypeVar("Result")


class InboundSms(BaseModel):
    """A mobile-originated SMS as a bridge hands it over."""

    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from", min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=32)
    text: str = Field("", max_length=messages.MAX_TEXT)
    id: str | None = Field(None, max_length=128, description="The bridge's message id")
    smsc: str | None = Field(None, max_length=64, description="The link it came through")

    @field_validator("sender", "to", "id", "smsc")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise ValueError("control characters are not allowed here")
        return value

    @field_validator("text")
    @classmethod
    def _storable(cls, value: str) -> str:
        # PostgreSQL text cannot hold NUL; the message is kept, the NUL marked as unknown.
        return value.replace("\x00", "\ufffd")


def not_served(settings: Settings, sms: InboundSms) -> str | None:
    """Why no door takes `sms`, if its short code is not one this gateway serves: nobody
    would answer it from a code that is not ours."""
    if sms.to in settings.shortcodes:
        return None
    return f"to: not a configured short code ({', '.join(sorted(settings.shortcodes))})"


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the ingest did with one message."""

    id: int
    duplicate: bool


class Unavailable(Exception):
    """The message could not be recorded or enqueued: the bridge must retry."""


class Ingest:
    """Records and enqueues inbound messages, many at a time.

    One transaction records a batch and one dispatch task carries its ids: the cost of
    a commit and of a Celery hop is shared by every message of the batch.
    """

    def __init__(self, settings: Settings, pool: ConnectionPool, celery: Celery, *,
                 drain: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.celery = celery
        self.drain = drain or (lambda: status.drain_rate(celery.govsms.redis))
        # (messages waiting for their reply, how many may wait, when counted)
        self._backlog = (0, 0, -BACKLOG_CHECK_S)

    def accept(self, sms: InboundSms) -> Accepted:
        """Record `sms` once and enqueue it; a known message is enqueued again only if unanswered."""
        return self.accept_many([sms])[0]

    def accept_many(self, batch: list[InboundSms]) -> list[Accepted]:
        """Record each message of `batch` once and enqueue those not yet picked up, in one
        transaction and one task.

        Raises Unavailable if the store or the queue fails; the bridge sends them again.
        """
        rows = [self._row(sms) for sms in batch]
        try:
            self._check_backlog()
            with self.pool.connection() as conn:
                results = messages.record_inbound_many(conn, rows)
        except psycopg.Error as error:
            log.error("cannot record %d inbound: %s", len(rows), type(error).__name__)
            raise Unavailable("message store unavailable") from error
        # A repeat of a message not yet picked up may be one whose first enqueue failed.
        ids = [r.id for r in results if r.new or r.state == "received"]
        if ids and not publish(self.celery, DISPATCH, [ids], queue=INBOUND):
            raise Unavailable("queue unavailable")
        for row, result in zip(rows, results, strict=True):
            log.info("inbound %s from %s to %s%s", result.id, mask_digits(row.sender), row.shortcode,
                     "" if result.new else " (repeat)", extra=correlation(result.id))
        return [Accepted(r.id, duplicate=not r.new) for r in results]

    def _check_backlog(self) -> None:
        """Refuse new work while more messages wait for their reply (to be answered, or
        sent) than the senders clear within `ingest_max_wait_s` at the rate they sent
        over the last seconds: the SMSC keeps what is refused and sends it again (its
        store-and-forward), and what was accepted is still answered in time, however fast
        the link is. Counted at most once a second."""
        cap = self.settings.ingest_max_backlog
        if not cap:
            return
        count, limit, at = self._backlog
        if time.monotonic() - at >= BACKLOG_CHECK_S:
            limit = min(cap, max(BACKLOG_FLOOR, int(self._drain_rate() *
                                                    self.settings.ingest_max_wait_s)))
            with self.pool.connection() as conn:
                count = messages.waiting(conn, limit + 1)  # counted only as far as it matters
            self._backlog = (count, limit, time.monotonic())
            if count > limit:
                log.warning("refusing new messages: more than %d wait for their reply (what "
                            "is sent within %.0f s at the recent rate)", limit,
                            self.settings.ingest_max_wait_s)
        if count > limit:
            raise Unavailable("too many messages waiting for their reply; send again later")

    def _drain_rate(self) -> float:
        """SMS sent per second lately; 0 when it cannot be read (the floor then holds)."""
        try:
            return self.drain()
        except Exception:  # noqa: BLE001 - a counter we cannot read must not stop the intake
            return 0.0

    def _row(self, sms: InboundSms) -> messages.NewInbound:
        region = self.settings.regions.get(sms.to, "KZ")
        tariff = self.settings.tariffs.get(sms.to)
        return messages.NewInbound(
            source=sms.smsc or DEFAULT_SOURCE, external_id=sms.id or uuid.uuid4().hex,
            sender=to_e164(sms.sender, region) or sms.sender, shortcode=sms.to, text=sms.text,
            tariff=(tariff.amount, tariff.currency) if tariff else None)


class Batcher(Generic[Item, Result]):
    """Group commit for the HTTP handlers: the first item waits `linger_s` for others (up to
    `max_batch`), then all are written together by `write` (for MOs, `Ingest.accept_many`:
    one transaction and one task). Items arriving while a batch is written wait for the next.

    While the workers are behind (`depth()` > 0: tasks waiting on their queues, read after
    each linger) a batch waits longer, up to `linger_max_s`: its messages would wait in a
    queue anyway, and one task for many pays a Celery hop once. So batches, and the service
    and deliver tasks that follow them, grow with the load and stay small when it is light.
    """

    def __init__(self, write: Callable[[list[Item]], list[Result]], *, linger_s: float,
                 linger_max_s: float | None = None, depth: Callable[[], int] | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        self.write = write
        self.linger_s = linger_s
        self.linger_max_s = max(linger_s, linger_max_s or 0.0)
        self.depth = depth
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def accept(self, batch: list[Item]) -> list[Result]:
        """Each item's outcome once its batch is written; what `write` raised if it failed."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in batch]
        self._pending.extend(zip(batch, futures, strict=True))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return list(await asyncio.gather(*futures))

    def _backlogged(self) -> bool:
        if self.depth is None:
            return False
        try:
            return self.depth() > 0
        except Exception:  # noqa: BLE001 - a broker that cannot answer fails the write, not this
            return False

    async def _linger(self) -> None:
        waited = 0.0
        while len(self._pending) < self.max_batch:
            await asyncio.sleep(self.linger_s)
            waited += self.linger_s
            if waited >= self.linger_max_s or not await run_in_threadpool(self._backlogged):
                return

    async def _write(self) -> None:
        while self._pending:
            await self._linger()
            taken, self._pending = (self._pending[:self.max_batch],
                                    self._pending[self.max_batch:])
            try:
                results = await run_in_threadpool(self.write, [item for item, _ in taken])
            except Exception as error:  # noqa: BLE001 - each waiting request gets it
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():  # its request may have been cancelled meanwhile
                    future.set_result(result)
