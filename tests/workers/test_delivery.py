"""Delivery in the pipeline: parts, claims and possible duplicates, receipts, rate limits, backoff."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from fastapi.testclient import TestClient

from replies import encoding
from replies.transports import RateLimited, Sms, TransportError
from replies.transports.base import Outcome, outcome
from replies.transports.fake import MemoryTransport
from tests.support.keys import SECRET
from tests.support.pipeline import make_pipeline, receive
from workers import messages, pipeline
from workers.ingest.http import create_app
from workers.tasks import MAX_COUNTDOWN_S, send_countdown

LONG_LATIN = "Uvazhaemyi grazhdanin, " * 10          # 230 GSM-7 characters: 2 parts
LONG_CYRILLIC = "Ваша очередь на жилье подошла. " * 4  # 124 UCS-2 characters: 2 parts


@pytest.fixture
def p(conn, database_url):
    built = make_pipeline(database_url)
    yield built
    built.pool.close()


def notice(conn, text: str, key: str = "k1") -> list[int]:
    ids, _ = messages.add_notice(conn, key=key, sender="1414", recipient="+77011234567",
                                 parts=pipeline.to_parts(text),
                                 deadline=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60))
    return ids


def one_reply(conn, p) -> int:
    [outbound_id] = pipeline.dispatch(p, [receive(conn, "hello")]).outbound
    return outbound_id


@pytest.mark.parametrize(("text", "coding", "sizes"), [
    (LONG_LATIN, "gsm7", [153, 77]), (LONG_CYRILLIC, "ucs2", [67, 57]),
])
def test_a_long_sms_is_a_row_per_part_sent_as_concatenated_parts(conn, p, text, coding, sizes):
    ids = notice(conn, text)
    rows = conn.execute("SELECT part, parts, reference, coding FROM outbound ORDER BY part").fetchall()
    assert [r[:2] for r in rows] == [(1, 2), (2, 2)]
    assert len({r[2] for r in rows}) == 1 and {r[3] for r in rows} == {coding}
    transport = MemoryTransport()
    pipeline.deliver(p.pool, transport, p.sealer, ids)
    assert [(s.part, s.parts, s.coding) for s in transport.sent] == [(1, 2, coding), (2, 2, coding)]
    assert "".join(s.text for s in transport.sent) == text
    assert [encoding.length(s.text, coding) for s in transport.sent] == sizes


def test_a_sealed_long_text_is_sealed_part_by_part(conn, p):
    parts = pipeline.to_parts("MK: Secr3t!pw " + LONG_LATIN, p.sealer)
    assert all("Secr3t" not in t for t in parts.texts) and len(parts.texts) == 2
    assert "".join(p.sealer.unseal(t) for t in parts.texts).startswith("MK: Secr3t!pw")


def test_a_crash_between_submit_and_record_resends_once_flagged(conn, p):
    outbound_id = one_reply(conn, p)
    # A sender claims the part, submits it, and dies before recording the submit.
    with p.pool.connection() as other:
        claimed, _ = messages.claim_many(other, [outbound_id], 30)
        assert [c.id for c in claimed] == [outbound_id]
    transport = MemoryTransport()
    busy = pipeline.deliver(p.pool, transport, p.sealer, [outbound_id], stale_s=30)
    assert busy.busy == [outbound_id] and transport.sent == []  # the claim is still young
    again = pipeline.deliver(p.pool, transport, p.sealer, [outbound_id], stale_s=0)
    assert again.sent == [outbound_id] and len(transport.sent) == 1
    assert conn.execute("SELECT state, possible_duplicate, attempts FROM outbound").fetchone() == (
        "sent", True, 2)
    assert pipeline.deliver(p.pool, transport, p.sealer, [outbound_id], stale_s=0).sent == []


def test_a_normal_send_is_not_flagged(conn, p):
    outbound_id = one_reply(conn, p)
    pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [outbound_id])
    assert conn.execute("SELECT possible_duplicate FROM outbound").fetchone() == (False,)


class SlowTransport(MemoryTransport):
    def send(self, sms: Sms) -> str | None:
        time.sleep(0.3)
        return super().send(sms)


def test_two_senders_of_one_part_at_once_send_it_once(conn, p):
    outbound_id = one_reply(conn, p)
    transport = SlowTransport()
    results: list[pipeline.Delivered] = []
    threads = [threading.Thread(target=lambda: results.append(
        pipeline.deliver(p.pool, transport, p.sealer, [outbound_id]))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(transport.sent) == 1
    assert sorted(len(r.sent) for r in results) == [0, 1]
    assert sorted(len(r.busy) for r in results) == [0, 1]


def test_a_receipt_before_the_submit_answer_is_not_lost(conn, p):
    outbound_id = one_reply(conn, p)
    assert messages.record_receipt(conn, "mem-1", "delivered") == 0  # nothing carries the id yet
    pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [outbound_id])
    assert conn.execute("SELECT transport_id, delivery FROM outbound").fetchone() == (
        "mem-1", "delivered")


def test_a_receipt_after_the_submit_and_final_states_stay(conn, p):
    outbound_id = one_reply(conn, p)
    pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [outbound_id])
    assert messages.record_receipt(conn, "mem-1", "enroute") == 1
    assert messages.record_receipt(conn, "mem-1", "undeliverable") == 1
    assert messages.record_receipt(conn, "mem-1", "enroute") == 0  # too late to matter
    assert conn.execute("SELECT delivery FROM outbound").fetchone() == ("undeliverable",)


def test_a_rate_limit_is_not_a_failed_attempt(conn, p):
    outbound_id = one_reply(conn, p)
    transport = MemoryTransport()
    transport.failures.append(RateLimited("link at 20/s", retry_after=1.5))
    done = pipeline.deliver(p.pool, transport, p.sealer, [outbound_id])
    assert done.retry == [outbound_id] and done.wait_s == 1.5
    assert conn.execute("SELECT state, attempts FROM outbound").fetchone() == ("queued", 0)


def test_a_retryable_failure_is_an_attempt_and_keeps_the_deadline(conn, p):
    outbound_id = one_reply(conn, p)
    transport = MemoryTransport()
    transport.failures.append(TransportError("smsc down", retryable=True))
    done = pipeline.deliver(p.pool, transport, p.sealer, [outbound_id])
    deadline, = conn.execute("SELECT deadline FROM outbound").fetchone()
    assert done.deadline == deadline
    assert conn.execute("SELECT state, attempts, error FROM outbound").fetchone() == (
        "queued", 1, "smsc down")


NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("retries", "wait", "deadline_in", "low", "high"), [
    (0, 0.0, 60, 0.8, 1.0),            # backoff with jitter
    (4, 0.0, 60, 12.8, 16.0),
    (4, 0.0, 3, 3.0, 3.0),             # never past the deadline while there is one ahead
    (6, 0.0, None, 12.8, MAX_COUNTDOWN_S),
    (6, 0.0, -30, 12.8, MAX_COUNTDOWN_S),  # late: it keeps backing off, and is still sent
    (0, 5.0, 60, 5.0, 5.0),            # never sooner than the rate limit asked
])
def test_send_countdown(retries, wait, deadline_in, low, high):
    deadline = None if deadline_in is None else NOW + dt.timedelta(seconds=deadline_in)
    for _ in range(50):
        assert low <= send_countdown(retries, wait, deadline, NOW) <= high


def test_the_reconciler_finds_a_claim_left_by_a_dead_sender(conn, p):
    outbound_id = one_reply(conn, p)
    with p.pool.connection() as other:
        messages.claim_many(other, [outbound_id], 30)
    conn.execute("UPDATE outbound SET claimed_at = now() - interval '2 minutes'")
    assert messages.stale(conn, older_than_s=40, limit=10) == messages.Stale([], [outbound_id], [])


def test_kannel_delivery_reports(settings, conn, p):
    outbound_id = one_reply(conn, p)
    with TestClient(create_app(settings)) as client:
        url = f"/sms/dlr?outbound={outbound_id}&type=8&token={SECRET}"
        assert client.get(url).status_code == 200
        assert conn.execute("SELECT delivery FROM outbound").fetchone() == ("accepted",)
        assert client.get(url.replace("type=8", "type=1")).text == "ok"
        assert client.get(url.replace("type=8", "type=7")).status_code == 400
        assert client.get(f"/sms/dlr?outbound={outbound_id}&type=2").status_code == 401
    assert conn.execute("SELECT delivery FROM outbound").fetchone() == ("delivered",)


def test_receipts_recorded_together_end_as_one_at_a_time_would(conn, p):
    first, second = one_reply(conn, p), notice(conn, "Vash kod gotov", key="k2")[0]
    known = messages.record_deliveries(conn, [
        (first, "accepted"), (first, "delivered"),  # a later state replaces an earlier one
        (second, "delivered"), (second, "accepted"),  # a final one stays
        (424242, "delivered")])
    assert known == [True, True, True, True, False]
    states = conn.execute("SELECT id, delivery FROM outbound ORDER BY id").fetchall()
    assert dict(states) == {first: "delivered", second: "delivered"}


def test_receipts_that_arrive_together_are_recorded_in_one_statement(settings, conn, p,
                                                                     monkeypatch):
    ids = [one_reply(conn, p)] + notice(conn, "Vash kod gotov", key="k2")
    batches: list[int] = []
    record = messages.record_deliveries

    def counted(c, receipts):
        batches.append(len(receipts))
        return record(c, receipts)

    monkeypatch.setattr(messages, "record_deliveries", counted)
    with TestClient(create_app(settings)) as client:
        def receipt(outbound_id: int) -> None:
            url = f"/sms/dlr?outbound={outbound_id}&type=1&token={SECRET}"
            assert client.get(url).status_code == 200

        threads = [threading.Thread(target=receipt, args=(i,)) for i in ids * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sum(batches) == len(threads) and len(batches) < len(threads)
    states = conn.execute("SELECT delivery FROM outbound").fetchall()
    assert {s[0] for s in states} == {"delivered"}


def test_a_batch_out_of_time_leaves_the_parts_it_did_not_try_for_later(conn, p):
    ids = notice(conn, LONG_LATIN) + notice(conn, "Vash kod gotov", key="k2")
    transport = MemoryTransport()
    done = pipeline.deliver(p.pool, transport, p.sealer, ids, budget_s=0)
    assert (done.sent, done.later, len(transport.sent)) == (ids[:1], ids[1:], 1)
    states = conn.execute("SELECT state FROM outbound ORDER BY id").fetchall()
    assert [s[0] for s in states] == ["sent", "queued", "queued"]


class WindowedLink(MemoryTransport):
    """Takes `window` SMS at once, and keeps how many each call handed it."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self.calls: list[int] = []

    def send_many(self, texts: list[Sms]) -> list[Outcome]:
        self.calls.append(len(texts))
        return [outcome(self.send, sms) for sms in texts]


def test_a_transport_with_a_window_gets_that_many_parts_at_once(conn, p):
    ids = [pipeline.dispatch(p, [receive(conn, "hello", external_id=f"w-{n}")]).outbound[0]
           for n in range(9)]
    link = WindowedLink(window=4)
    done = pipeline.deliver(p.pool, link, p.sealer, ids)
    assert link.calls == [4, 4, 1]
    assert sorted(done.sent) == sorted(ids) and sorted(s.outbound_id for s in link.sent) == sorted(ids)
    states = conn.execute("SELECT state, transport_id FROM outbound ORDER BY id").fetchall()
    assert [s for s, _ in states] == ["sent"] * 9 and len({t for _, t in states}) == 9


def test_each_part_of_a_window_is_recorded_as_it_went(conn, p):
    ids = [pipeline.dispatch(p, [receive(conn, "hello", external_id=f"m-{n}")]).outbound[0]
           for n in range(3)]
    link = WindowedLink(window=3)
    link.failures.extend([TransportError("busy", retryable=True),
                          TransportError("refused", retryable=False)])
    done = pipeline.deliver(p.pool, link, p.sealer, ids)
    assert (done.retry, done.failed, done.sent) == ([ids[0]], [ids[1]], [ids[2]])
    states = conn.execute("SELECT id, state FROM outbound ORDER BY id").fetchall()
    assert states == [(ids[0], "queued"), (ids[1], "failed"), (ids[2], "sent")]


def test_a_store_out_of_reach_makes_deliver_retry_not_give_up():
    from replies.sealing import Sealer
    from services.errors import StoreUnavailable
    from tests.support.keys import KEY
    from workers import db

    # A pooler restarting, a failover: the task retries (StoreUnavailable), it does not fail
    # the batch into dead letters as it would for a poison message.
    pool = db.create_pool("host=127.0.0.1 port=1 dbname=none user=nobody",
                          statement_timeout_ms=1000, wait_s=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            pipeline.deliver(pool, MemoryTransport(), Sealer(KEY), [1, 2])
    finally:
        pool.close()
