"""The pipeline's steps as plain functions: dispatch, answer, deliver. Tasks only wire them.

ingest -> [inbound queue] dispatch -> [service queue] answer -> [outbound queue] deliver
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import ConnectionPool

from parsers import KeywordIndex
from replies.masking import mask_digits
from replies.sealing import Sealer
from replies.templates import COMMON, Templates
from replies.transports import Sms, Transport, TransportError
from services import account_registration
from services.errors import StoreUnavailable
from services.handler import Reply, Request
from services.registry import Registry
from workers import messages
from workers.logs import correlation

log = logging.getLogger(__name__)

NOT_FOUND = Reply(COMMON, "service_not_found")
UNAVAILABLE = Reply(COMMON, "unavailable")


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


@dataclass(slots=True)
class Dispatched:
    """Where a batch of inbound messages goes next."""

    services: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    deadlines: dict[str, float] = field(default_factory=dict)  # per service, the earliest (epoch)
    outbound: list[int] = field(default_factory=list)


def render(p: Pipeline, reply: Reply) -> str:
    """The reply's text as it is stored: sealed when it carries a password or code."""
    text = p.templates.render(reply)
    return p.sealer.seal(text) if reply.sealed else text


def _reply(conn: psycopg.Connection, p: Pipeline, row: messages.Inbound, reply: Reply) -> int | None:
    return messages.add_reply(conn, inbound=row, text=render(p, reply),
                              service=None if reply.service == COMMON else reply.service,
                              outcome=reply.outcome, deadline=row.received_at + p.sla,
                              sealed=reply.sealed)


def dispatch(p: Pipeline, ids: list[int]) -> Dispatched:
    """Parse each message: answer those that name no service, route the rest to their service."""
    out = Dispatched()
    with p.pool.connection() as conn, conn.transaction():
        routes: dict[int, str] = {}
        for row in messages.unfinished_inbound(conn, ids):
            service = p.index.parse(row.shortcode, row.text).service
            log.info("routed to %s", service or "no service", extra=correlation(row.id))
            if service is None:
                outbound_id = _reply(conn, p, row, NOT_FOUND)
                if outbound_id is not None:
                    out.outbound.append(outbound_id)
            else:
                routes[row.id] = service
                out.services[service].append(row.id)
                deadline = (row.received_at + p.sla).timestamp()
                out.deadlines[service] = min(out.deadlines.get(service, deadline), deadline)
        messages.mark_dispatched(conn, routes)
    return out


def answer(p: Pipeline, service: str, ids: list[int]) -> list[int]:
    """Run `service`'s handler for each message and queue its reply; the new outbound ids.

    Raises StoreUnavailable when a backing store cannot answer, so the task can retry.
    A message whose handler fails otherwise becomes a dead letter; the others go on.
    """
    handler = p.registry[service].handler
    queued: list[int] = []
    try:
        with p.pool.connection() as conn, conn.transaction():
            for row in messages.unfinished_inbound(conn, ids):
                if handler is None:
                    messages.add_dead_letter(conn, task="answer", inbound_id=row.id,
                                             reason=f"service {service} is not offered yet")
                    continue
                try:
                    with conn.transaction():
                        parsed = p.index.parse(row.shortcode, row.text)
                        reply = handler(conn, Request(row.sender, parsed, row.received_at))
                        outbound_id = _reply(conn, p, row, reply)
                except psycopg.OperationalError:
                    raise
                except Exception as error:  # a bug for this message must not block the others
                    log.exception("handler %s failed", service, extra=correlation(row.id))
                    messages.add_dead_letter(conn, task="answer", inbound_id=row.id,
                                             reason=f"{type(error).__name__} in {service}")
                    continue
                log.info("answered: %s.%s", reply.service, reply.outcome,
                         extra=correlation(row.id))
                if outbound_id is not None:
                    queued.append(outbound_id)
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"{type(error).__name__}") from error
    return queued


def answer_unavailable(p: Pipeline, service: str, ids: list[int], reason: str) -> list[int]:
    """Tell each citizen the service is down, and keep the message as a dead letter for replay."""
    queued: list[int] = []
    with p.pool.connection() as conn, conn.transaction():
        for row in messages.unfinished_inbound(conn, ids):
            outbound_id = _reply(conn, p, row, UNAVAILABLE)
            messages.add_dead_letter(conn, task="answer", inbound_id=row.id,
                                     reason=f"{service} unavailable: {reason}")
            if outbound_id is not None:
                queued.append(outbound_id)
    return queued


@dataclass(slots=True)
class Delivered:
    """What became of a batch of outbound SMS."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)


def deliver(pool: ConnectionPool, transport: Transport, sealer: Sealer,
            ids: list[int]) -> Delivered:
    """Send each queued SMS once: claim its row, hand it to the transport, record the outcome."""
    out = Delivered()
    for outbound_id in ids:
        with pool.connection() as conn, conn.transaction():
            row = messages.claim_outbound(conn, outbound_id)
            if row is None:  # already sent or failed: a redelivered task
                continue
            text = sealer.unseal(row.text) if row.sealed else row.text
            sms = Sms(row.id, row.inbound_id, row.sender, row.recipient, text)
            try:
                transport_id = transport.send(sms)
            except TransportError as error:
                if error.retryable:
                    messages.count_attempt(conn, row.id, error.reason)
                    out.retry.append(row.id)
                else:
                    _fail(conn, row, error.reason)
                    out.failed.append(row.id)
                continue
            messages.mark_sent(conn, row.id, transport_id)
        out.sent.append(row.id)
        log.info("sent %s to %s from %s: %s", row.id, mask_digits(row.recipient), row.sender,
                 "(sealed)" if row.sealed else row.text,
                 extra=correlation(row.inbound_id, row.id))
    return out


def rotate_passwords(p: Pipeline, now: dt.datetime) -> list[int]:
    """Reissue the 8188 passwords left unchanged for 3 days; the reminders to send."""
    queued: list[int] = []
    with p.pool.connection() as conn, conn.transaction():
        for notice in account_registration.rotate_due(conn, now):
            outbound_id, new = messages.add_notice(
                conn, key=notice.key, sender=p.senders[account_registration.NAME],
                recipient=notice.recipient, text=render(p, notice.reply), deadline=now + p.sla,
                service=notice.reply.service, outcome=notice.reply.outcome, sealed=True)
            if new:
                queued.append(outbound_id)
    return queued


def give_up(pool: ConnectionPool, ids: list[int], reason: str) -> None:
    """Mark SMS that kept failing as failed, each with a dead letter."""
    with pool.connection() as conn, conn.transaction():
        for outbound_id in ids:
            row = messages.claim_outbound(conn, outbound_id)
            if row is not None:
                _fail(conn, row, reason)


def _fail(conn: psycopg.Connection, row: messages.Outbound, reason: str) -> None:
    messages.mark_failed(conn, row.id, reason)
    messages.add_dead_letter(conn, task="deliver", outbound_id=row.id,
                             inbound_id=row.inbound_id, reason=reason)
