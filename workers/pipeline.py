"""The pipeline's steps as plain functions: dispatch, answer, deliver. Tasks only wire them.

ingest -> [inbound queue] dispatch -> [service queue] answer -> [outbound queue] deliver
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import ConnectionPool

from parsers import KeywordIndex
from replies import encoding
from replies.masking import mask_digits
from replies.reply import Reply
from replies.sealing import Sealer
from replies.templates import COMMON, Templates
from replies.transports import RateLimited, Sms, Transport, TransportError
from replies.transports.base import Outcome, send_many
from services import account_registration
from services.errors import StoreUnavailable
from services.handler import BatchHandler, Request
from services.registry import Registry
from workers import db, messages
from workers.logs import correlation
from workers.suppression import ANSWER, TOO_MANY, Guard

log = logging.getLogger(__name__)

NOT_FOUND = Reply(COMMON, "service_not_found")
# A deliver batch starts no part after this long: the parts left go back on the queue, so a
# batch on a slow link ends inside the task's soft time limit (docs/delivery.md).
DELIVER_BUDGET_S = 3.0
UNAVAILABLE = Reply(COMMON, "unavailable")
# The most one message's parse may take: a parse is microseconds, so this is a hostile text
# or a bug, and its batch fails at once rather than at the task's soft time limit.
MESSAGE_BUDGET_S = 1.0


class MessageOverran(Exception):
    """One message took longer than its budget; its batch-mates are not at fault."""


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Raise MessageOverran in the block once it has run `seconds`, where a timer can tell it.

    Only a process's main thread gets signals (a prefork worker's task runs there); elsewhere
    the task's own time limit is the bound.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def overran(signum: int, frame: object) -> None:
        raise MessageOverran(f"over its budget of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What every step needs, built once per worker process."""

    pool: ConnectionPool
    index: KeywordIndex
    registry: Registry
    templates: Templates
    sla: dt.timedelta
    sealer: Sealer
    senders: Mapping[str, str]  # service -> the short code its own SMS come from
    guard: Guard  # which MOs get no reply (suppression.py)


@dataclass(slots=True)
class Dispatched:
    """Where a batch of inbound messages goes next."""

    services: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    deadlines: dict[str, float] = field(default_factory=dict)  # per service, the earliest (epoch)
    outbound: list[int] = field(default_factory=list)


def to_parts(text: str, sealer: Sealer | None = None) -> messages.Parts:
    """A text as it is stored: split into SMS parts, each sealed when a sealer is given."""
    segmented = encoding.split(text)
    texts = [sealer.seal(t) for t in segmented.parts] if sealer else segmented.parts
    return messages.Parts(texts, segmented.coding, secrets.randbelow(256), sealer is not None)


def render(p: Pipeline, reply: Reply) -> messages.Parts:
    """A reply as it is stored: its text in SMS parts, sealed if it carries a secret."""
    return to_parts(p.templates.render(reply), p.sealer if reply.sealed else None)


def _reply(p: Pipeline, row: messages.Inbound, reply: Reply) -> messages.NewReply:
    return messages.NewReply(row, render(p, reply),
                             None if reply.service == COMMON else reply.service,
                             reply.outcome, row.received_at + p.sla)


@contextmanager
def _store() -> Iterator[None]:
    """A store that cannot be reached (a refused connection, a pool's timeout) is
    StoreUnavailable: retryable, never the message's fault."""
    try:
        yield
    except psycopg.OperationalError as error:  # PoolTimeout too
        raise StoreUnavailable(type(error).__name__) from error


def dispatch(p: Pipeline, ids: list[int]) -> Dispatched:
    """Parse each message: answer those that name no service, route the rest to their service;
    those the guard says get no reply are recorded as suppressed (suppression.py)."""
    out = Dispatched()
    with _store():
        _dispatch(p, ids, out)
    return out


def _dispatch(p: Pipeline, ids: list[int], out: Dispatched) -> None:
    with p.pool.connection() as conn, conn.transaction():
        routes: dict[int, str] = {}
        unrouted: list[messages.NewReply] = []
        suppressed: dict[int, str] = {}
        rows = messages.unfinished_inbound(conn, ids)
        for row, verdict in zip(rows, p.guard.verdicts(rows), strict=True):
            if verdict == TOO_MANY:
                log.info("flood limit reached: told so once", extra=correlation(row.id))
                unrouted.append(_reply(p, row, too_many(p, row.shortcode)))
                continue
            if verdict != ANSWER:
                log.info("suppressed: %s", verdict, extra=correlation(row.id))
                suppressed[row.id] = verdict
                continue
            with budget(MESSAGE_BUDGET_S):
                service = p.index.parse(row.shortcode, row.text).service
            log.info("routed to %s", service or "no service", extra=correlation(row.id))
            if service is None:
                unrouted.append(_reply(p, row, NOT_FOUND))
            else:
                routes[row.id] = service
                out.services[service].append(row.id)
                deadline = (row.received_at + p.sla).timestamp()
                out.deadlines[service] = min(out.deadlines.get(service, deadline), deadline)
        messages.mark_dispatched(conn, routes)
        messages.suppress(conn, suppressed)
        out.outbound += messages.add_replies(conn, unrouted)


def too_many(p: Pipeline, shortcode: str) -> Reply:
    """The flood limit's one reply, in the short code's language: its own service's text
    where that service has one (8188's Vietnamese), else the common one."""
    for service, code in p.senders.items():
        if code == shortcode and p.templates.has(service, TOO_MANY):
            return Reply(service, TOO_MANY)
    return Reply(COMMON, TOO_MANY)


class _HandlerFailed(Exception):
    """A handler raised in a batch run without a savepoint per message: run it again with."""


def answer(p: Pipeline, service: str, ids: list[int]) -> list[int]:
    """Run `service`'s handler for each message and queue its reply; the new outbound ids.

    Raises StoreUnavailable when a backing store cannot answer, so the task can retry.
    A message whose handler fails otherwise becomes a dead letter; the others go on. The
    batch runs in one transaction, through the service's batch handler where it has one
    (the look-ups of every message at once); only when a handler fails is it rolled back
    and run again a message at a time, with a savepoint around each.
    """
    with _store():
        try:
            return _answer(p, service, ids, isolated=False)
        except _HandlerFailed:
            return _answer(p, service, ids, isolated=True)


def _answer(p: Pipeline, service: str, ids: list[int], *, isolated: bool) -> list[int]:
    entry = p.registry[service]
    queued: list[int] = []
    replies: list[messages.NewReply] = []  # queued together at the end, unless isolated
    with p.pool.connection() as conn, conn.transaction():
        rows = messages.unfinished_inbound(conn, ids)
        if entry.handler is None:
            for row in rows:
                messages.add_dead_letter(conn, task="answer", inbound_id=row.id,
                                         reason=f"service {service} is not offered yet")
            return []
        if entry.batch is not None and not isolated and rows:
            return messages.add_replies(conn, _answer_batch(conn, p, entry.batch, rows))
        for row in rows:
            try:
                with conn.transaction() if isolated else nullcontext():
                    reply = entry.handler(conn, _request(p, row))
                    if isolated:
                        queued += messages.add_replies(conn, [_reply(p, row, reply)])
                    else:
                        replies.append(_reply(p, row, reply))
            except psycopg.OperationalError:
                raise
            except Exception as error:  # a bug for this message must not block the others
                if not isolated:
                    raise _HandlerFailed from error
                log.exception("handler %s failed", service, extra=correlation(row.id))
                messages.add_dead_letter(conn, task="answer", inbound_id=row.id,
                                         reason=f"{type(error).__name__} in {service}")
                continue
            _answered(row, reply)
        queued += messages.add_replies(conn, replies)
    return queued


def _answer_batch(conn: psycopg.Connection, p: Pipeline, handle_many: BatchHandler,
                  rows: list[messages.Inbound]) -> list[messages.NewReply]:
    """Every message at once through the service's batch handler; a failure is the batch's
    (run again a message at a time, each with a savepoint)."""
    try:
        answered = handle_many(conn, [_request(p, row) for row in rows])
    except psycopg.OperationalError:
        raise
    except Exception as error:
        raise _HandlerFailed from error
    for row, reply in zip(rows, answered, strict=True):
        _answered(row, reply)
    return [_reply(p, row, reply) for row, reply in zip(rows, answered, strict=True)]


def _request(p: Pipeline, row: messages.Inbound) -> Request:
    return Request(row.sender, p.index.parse(row.shortcode, row.text), row.received_at)


def _answered(row: messages.Inbound, reply: Reply) -> None:
    log.info("answered: %s.%s", reply.service, reply.outcome, extra=correlation(row.id))


def answer_unavailable(p: Pipeline, service: str, ids: list[int], reason: str) -> list[int]:
    """Tell each citizen the service is down, and keep the message as a dead letter for replay."""
    return bury(p, ids, task="answer", reason=f"{service} unavailable: {reason}")


def bury(p: Pipeline, ids: list[int], *, task: str, reason: str) -> list[int]:
    """Give up on unanswered messages: a generic reply to each citizen, and a dead letter."""
    with p.pool.connection() as conn, conn.transaction():
        rows = messages.unfinished_inbound(conn, ids)
        for row in rows:
            messages.add_dead_letter(conn, task=task, inbound_id=row.id, reason=reason)
            log.warning("gave up: %s", reason, extra=correlation(row.id))
        return messages.add_replies(conn, [_reply(p, row, UNAVAILABLE) for row in rows])


@dataclass(slots=True)
class Delivered:
    """What became of a batch of outbound SMS parts."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)  # claimed by a sender still at work
    later: list[int] = field(default_factory=list)  # not tried: the batch ran out of time
    wait_s: float = 0.0  # the longest a rate limit asked to wait
    deadline: dt.datetime | None = None  # the earliest deadline among `retry`


def deliver(pool: ConnectionPool, transport: Transport, sealer: Sealer, ids: list[int],
            stale_s: float = 30.0, budget_s: float = DELIVER_BUDGET_S) -> Delivered:
    """Send each part once: claim the batch (committed), hand the parts to the transport
    `transport.window` at a time (1 unless it says more), and record their outcomes as
    soon as the transport gives them (one statement for those sent, committed by itself).

    Between a submit and the record of it, a crash leaves the part claimed; the sender
    that claims it again once the claim is stale sends it again and flags it as a possible
    duplicate: at most one duplicate per part in flight when the crash came (the window),
    never a lost SMS. Parts a crash left claimed but not tried are flagged as well, though
    never sent twice. StoreUnavailable when the message store cannot be reached: what was
    claimed and sent but not recorded then is a crash's part, as above.
    """
    out = Delivered()
    until = time.monotonic() + budget_s
    window = max(1, getattr(transport, "window", 1))
    # Each record below is one statement: its own commit.
    with _store(), db.autocommit(pool) as conn:
        claimed, out.busy = messages.claim_many(conn, ids, stale_s)
        for n in range(0, len(claimed), window):
            if n and time.monotonic() > until:  # a slow link must not hold a batch past
                out.later = [c.id for c in claimed[n:]]  # its time limit
                messages.unclaim(conn, out.later)
                break
            chunk = claimed[n:n + window]
            texts = [_sms(sealer, part) for part in chunk]
            _record(conn, chunk, texts, send_many(transport, texts), out)
    return out


def _sms(sealer: Sealer, claimed: messages.Claimed) -> Sms:
    text = sealer.unseal(claimed.text) if claimed.sealed else claimed.text
    return Sms(claimed.id, claimed.inbound_id, claimed.sender, claimed.recipient, text,
               part=claimed.part, parts=claimed.parts, reference=claimed.reference,
               coding=claimed.coding, sealed=claimed.text if claimed.sealed else None)


def _record(conn: psycopg.Connection, chunk: list[messages.Claimed], texts: list[Sms],
            outcomes: list[Outcome], out: Delivered) -> None:
    sent: list[tuple[messages.Claimed, Sms, str | None]] = []
    for claimed, sms, result in zip(chunk, texts, outcomes, strict=True):
        if not isinstance(result, TransportError):
            sent.append((claimed, sms, result))
        elif result.retryable:
            limited = isinstance(result, RateLimited)
            messages.release(conn, claimed.id, result.reason, count_attempt=not limited,
                             in_doubt=result.in_doubt)
            out.retry.append(claimed.id)
            out.wait_s = max(out.wait_s, result.retry_after if limited else 0.0)
            if out.deadline is None or claimed.deadline < out.deadline:
                out.deadline = claimed.deadline
        else:
            with conn.transaction():
                _fail(conn, claimed.id, result.reason)
            out.failed.append(claimed.id)
    messages.mark_sent(conn, [(claimed.id, transport_id) for claimed, _, transport_id in sent])
    for claimed, sms, _ in sent:
        out.sent.append(claimed.id)
        # Never the text: a client's may carry anything, a sealed one a password or code.
        log.info("sent %s to %s from %s: part %d of %d, %d characters%s", claimed.id,
                 mask_digits(claimed.recipient), claimed.sender, claimed.part, claimed.parts,
                 len(sms.text), " (sealed)" if claimed.sealed else "",
                 extra=correlation(claimed.inbound_id, claimed.id))


def rotate_passwords(p: Pipeline, now: dt.datetime) -> list[int]:
    """Reissue the 8188 passwords left unchanged for 3 days; the reminders to send."""
    queued: list[int] = []
    with p.pool.connection() as conn, conn.transaction():
        for notice in account_registration.rotate_due(conn, now):
            outbound_ids, new = messages.add_notice(
                conn, key=notice.key, sender=p.senders[account_registration.NAME],
                recipient=notice.recipient, parts=render(p, notice.reply), deadline=now + p.sla,
                service=notice.reply.service, outcome=notice.reply.outcome)
            if new:
                queued += outbound_ids
    return queued


def give_up(pool: ConnectionPool, ids: list[int], reason: str) -> None:
    """Mark parts that kept failing as failed, each with a dead letter."""
    with pool.connection() as conn, conn.transaction():
        for outbound_id in ids:
            _fail(conn, outbound_id, reason)


def _fail(conn: psycopg.Connection, outbound_id: int, reason: str) -> None:
    failed = messages.mark_failed(conn, outbound_id, reason)
    if failed is not None:
        messages.add_dead_letter(conn, task="deliver", outbound_id=outbound_id,
                                 inbound_id=failed[0], reason=reason)
