"""Answering a batch of a run's items: dry-run and compare roll back, send records and answers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from replies.reply import Reply
from services.errors import StoreUnavailable
from services.handler import Request
from workers import messages, pipeline
from workers.replay import runs
from workers.replay.runs import Item, Result

log = logging.getLogger(__name__)

# Of a reply that carries a password or code, only these parameters are shown in a report.
SHOWN_WHEN_SEALED = frozenset({"username"})


@dataclass(slots=True)
class Processed:
    """What one batch did: items finished, SMS to deliver, services whose store did not answer."""

    done: int = 0
    failed: int = 0
    outbound: list[int] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def process(p: pipeline.Pipeline, run_id: int, ids: Sequence[int], *,
            final: bool = False, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
            ) -> Processed:
    """Answer the open items of `ids` as their run's mode says; a stopped run does nothing.

    A store that does not answer leaves its items open for a retry (`unavailable`),
    unless `final`: then dry-run items fail, and sent ones get the "unavailable"
    reply and a dead letter, as live messages do.
    """
    with p.pool.connection() as conn:
        run = runs.get_run(conn, run_id)
        if run is None or run.state != "running":
            return Processed()
        items = runs.items(conn, run_id, ids)
    if not items:
        return Processed()
    if run.mode == "send":
        return _send(p, run_id, items, final)
    return _evaluate_all(p, run_id, items, final, now())


def _finish(p: pipeline.Pipeline, results: Sequence[Result]) -> None:
    if not results:
        return
    with p.pool.connection() as conn:
        runs.finish(conn, results)


def masked(reply: Reply) -> Reply:
    """A reply that carries a password or code with those shown as asterisks."""
    if not reply.sealed:
        return reply
    params = {k: v if k in SHOWN_WHEN_SEALED else "*" * len(str(v))
              for k, v in reply.params.items()}
    return Reply(reply.service, reply.outcome, params, sealed=True)


def evaluate(p: pipeline.Pipeline, conn: psycopg.Connection, item: Item,
             when: dt.datetime) -> Result:
    """Parse and answer one item on `conn` as the pipeline would; the caller rolls it back."""
    parsed = p.index.parse(item.shortcode, item.text)
    service = parsed.service
    if service is None:
        reply = pipeline.NOT_FOUND
    else:
        handler = p.registry[service].handler
        if handler is None:
            return Result(item.id, "failed", service, error=f"service {service} is not offered yet")
        reply = handler(conn, Request(item.sender, parsed, item.received_at or when))
    text = p.templates.render(masked(reply))
    return Result(item.id, "done", service, reply.outcome, text, reply.sealed)


def _evaluate_all(p: pipeline.Pipeline, run_id: int, items: Sequence[Item], final: bool,
                  when: dt.datetime) -> Processed:
    out = Processed()
    results: list[Result] = []
    try:
        with p.pool.connection() as conn:
            for item in items:
                try:
                    # Rolled back whatever happens: a registration creates no account.
                    with conn.transaction(force_rollback=True):
                        result = evaluate(p, conn, item, when)
                except (psycopg.OperationalError, StoreUnavailable):
                    raise
                except Exception as error:  # a bug for one message must not block the others
                    log.exception("replay run %s: item %s failed", run_id, item.id)
                    result = Result(item.id, "failed", error=type(error).__name__)
                results.append(result)
    except (psycopg.OperationalError, StoreUnavailable) as error:
        if not final:
            _finish(p, results)  # keep what was answered; the rest waits for the retry
            out.unavailable["store"] = type(error).__name__
            out.done = sum(r.state == "done" for r in results)
            return out
        done_ids = {r.id for r in results}
        results += [Result(i.id, "failed", error=f"store unavailable: {type(error).__name__}")
                    for i in items if i.id not in done_ids]
    _finish(p, results)
    out.done = sum(r.state == "done" for r in results)
    out.failed = len(results) - out.done
    return out


def _send(p: pipeline.Pipeline, run_id: int, items: Sequence[Item], final: bool) -> Processed:
    """Each item once, ever: a new inbound message, answered here, delivered by the outbound worker."""
    out = Processed()
    results: list[Result] = []
    mine: dict[int, int] = {}  # item id -> inbound id
    source = f"replay:{run_id}"
    with p.pool.connection() as conn, conn.transaction():
        for item in items:
            owner, inbound_id = runs.claim_key(conn, item.key, run_id)
            if owner != run_id:
                results.append(Result(item.id, "done", outcome="already_sent",
                                      inbound_id=inbound_id, error=f"sent by run {owner}"))
                continue
            # No tariff: the operator charged the citizen for the original message only.
            recorded = messages.record_inbound(conn, source=source, external_id=item.key,
                                               sender=item.sender, shortcode=item.shortcode,
                                               text=item.text)
            runs.sent_as(conn, item.key, recorded.id)
            mine[item.id] = recorded.id
    if mine:
        try:
            routed = pipeline.dispatch(p, list(mine.values()))
        except (StoreUnavailable, psycopg.OperationalError) as error:
            if final:
                raise
            out.unavailable["dispatch"] = type(error).__name__
            _finish(p, results)   # the already-sent ones; the rest waits for the retry
            out.done = len(results)
            return out
        out.outbound += routed.outbound
        for service, service_ids in routed.services.items():
            try:
                out.outbound += pipeline.answer(p, service, service_ids)
            except StoreUnavailable as error:
                if not final:
                    out.unavailable[service] = str(error)
                    continue
                out.outbound += pipeline.answer_unavailable(p, service, service_ids, str(error))
        with p.pool.connection() as conn:
            rows = messages.answers(conn, list(mine.values()))
        for item_id, inbound_id in mine.items():
            row = rows[inbound_id]
            if row["outcome"] is not None:
                results.append(Result(item_id, "done", row["service"], row["outcome"],
                                      row["reply"], row["sealed"], inbound_id))
            elif row["state"] == "suppressed":  # a sender or a flood the guard left unanswered
                results.append(Result(item_id, "done", row["service"], "suppressed",
                                      inbound_id=inbound_id))
            elif row["state"] == "dead":
                results.append(Result(item_id, "failed", row["service"], inbound_id=inbound_id,
                                      error="dead letter (govsms dead-letters list)"))
            # else: its store did not answer; the item stays open for the retry
    _finish(p, results)
    out.done = sum(r.state == "done" for r in results)
    out.failed = len(results) - out.done
    return out


def fail_items(p: pipeline.Pipeline, run_id: int, ids: Sequence[int], reason: str) -> None:
    """Mark the open items of a batch that broke as failed: the run can finish, a resume retries."""
    with p.pool.connection() as conn:
        items = runs.items(conn, run_id, ids)
    _finish(p, [Result(i.id, "failed", error=reason) for i in items])
