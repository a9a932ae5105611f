"""Faults of the SMPP link: an SMSC that throttles above 20/s; a submit_sm answered late or
never; a delivery receipt before the submit answer, or none at all.

The quick scenarios drive the pipeline's deliver step (a real SMSC, the real message
store, no Celery); the slow ones the whole gateway, with Celery's retries and beat.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from replies import encoding
from replies.transports.smpp.config import SmppConfig
from replies.transports.smpp.transport import SmppTransport
from tests.support.gateway import PORTAL_SECRET, Gateway, wait_for
from tests.support.peers.smsc import NEVER, Smsc, running_smsc
from tests.support.pipeline import make_pipeline
from workers import messages, pipeline
from workers.ingest.smpp import SmppReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

TEXT = "Vash dokument gotov"


@pytest.fixture
def throttling_smsc() -> Iterator[Smsc]:
    yield from running_smsc(throttle_tps=20)


def _post_backlog(url: str, count: int) -> None:
    """Post `count` client messages from 16 threads; runs in a process of its own."""
    headers = {"Authorization": f"Bearer {PORTAL_SECRET}"}
    with httpx.Client(headers=headers, timeout=30) as client, ThreadPoolExecutor(16) as pool:
        def post(n: int) -> None:
            client.post(url, json={"to": f"+7701333{n:04d}", "text": TEXT,
                                   "sender": "EGOV"}).raise_for_status()

        list(pool.map(post, range(count)))


@pytest.mark.slow
def test_an_smsc_that_throttles_above_20_per_s_gets_everything_at_its_rate(
        redis_server_own, gateway_on, throttling_smsc, conn):
    # tps 18: under the operator's 20/s by a margin for timing jitter (docs/delivery.md).
    gw = gateway_on(redis_server_own.spec.url,
                    transport=f"smpp://govsms:pw@127.0.0.1:{throttling_smsc.port}"
                              f"?mode=transmitter&tps=18")
    # The backlog comes from another process, as clients do: posted from this one, its
    # threads would hold the GIL the test SMSC answers with (tests/support/peers/smsc.py).
    poster = multiprocessing.get_context("spawn").Process(
        target=_post_backlog, args=(f"{gw.settings.ingest_url}/v1/messages/outbound", 120))
    poster.start()
    poster.join(60)
    assert poster.exitcode == 0, "posting the backlog failed"
    wait_for(lambda: conn.execute("SELECT count(*) FROM outbound WHERE state = 'sent'"
                                  ).fetchone()[0] == 120, 60, "every message sent")
    accepted = [s.at for s in throttling_smsc.submits if s.status == 0]
    throttled = sum(1 for s in throttling_smsc.submits if s.status != 0)
    rate = (len(accepted) - 1) / (accepted[-1] - accepted[0])
    print(f"\n[fault] throttling SMSC (20/s): sent={len(accepted)} rate={rate:.2f}/s "
          f"configured=18/s throttled_answers={throttled}")
    assert len(accepted) == 120 and len({s.destination_addr for s in throttling_smsc.submits
                                         if s.status == 0}) == 120
    assert abs(rate - 18) / 18 <= 0.05


# --- the deliver step against a real SMSC: no Celery, every retry made by the test ---------

TIMEOUT_S, RESEND_AFTER_S = 0.5, 2.0


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    yield from running_smsc()


@pytest.fixture
def p(conn: psycopg.Connection, database_url: str) -> Iterator[pipeline.Pipeline]:
    built = make_pipeline(database_url)
    yield built
    built.pool.close()


@pytest.fixture
def transport(smsc: Smsc) -> Iterator[SmppTransport]:
    t = SmppTransport(SmppConfig.from_url(
        f"smpp://govsms:pw@127.0.0.1:{smsc.port}?tps=100&timeout_s={TIMEOUT_S}"
        f"&resend_after_s={RESEND_AFTER_S}"))
    yield t
    t.close()


@pytest.fixture
def receipts(smsc: Smsc, database_url: str) -> Iterator[None]:
    """The SMPP ingest's receiver, recording receipts in the message store as it does."""
    with psycopg.connect(database_url, autocommit=True) as store:
        rx = SmppReceiver(lambda *_: None,
                          lambda message_id, state: messages.record_receipt(store, message_id,
                                                                            state))
        config = SmppConfig.from_url(f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}"
                                     "?mode=transceiver")
        stop = threading.Event()
        thread = threading.Thread(target=rx.run, args=(config, stop), kwargs={"step_s": 0.05},
                                  daemon=True)
        thread.start()
        smsc.wait_for_receiver()
        yield
        stop.set()
        thread.join(10)


def _queue_one(conn: psycopg.Connection) -> int:
    [outbound_id], _ = messages.add_notice(
        conn, key="fault", sender="EGOV", recipient="+77013330001",
        parts=pipeline.to_parts(TEXT), deadline=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    return outbound_id


def _row(conn: psycopg.Connection, outbound_id: int) -> dict:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT state, transport_id, attempts, possible_duplicate, delivery, "
                           "error FROM outbound WHERE id = %s", (outbound_id,)).fetchone()


def _deliver(p: pipeline.Pipeline, transport: SmppTransport,
             outbound_id: int) -> pipeline.Delivered:
    return pipeline.deliver(p.pool, transport, p.sealer, [outbound_id])


def _until_sent(p: pipeline.Pipeline, transport: SmppTransport, outbound_id: int,
                timeout_s: float = 15) -> list[pipeline.Delivered]:
    """Deliver as the task does: again after each retry's wait, until the part is sent."""
    rounds: list[pipeline.Delivered] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rounds.append(_deliver(p, transport, outbound_id))
        if rounds[-1].sent:
            return rounds
        time.sleep(max(rounds[-1].wait_s, 0.2))
    raise AssertionError(f"not sent in {timeout_s} s: {rounds}")


def test_a_submit_answered_after_its_timeout_is_recorded_sent_not_resent(conn, p, smsc,
                                                                         transport):
    outbound_id = _queue_one(conn)
    smsc.answer_after.append(1.5)          # three times the transport's wait
    began = time.monotonic()
    first = _deliver(p, transport, outbound_id)
    assert first.retry == [outbound_id]
    assert _row(conn, outbound_id)["state"] == "queued"
    assert "in doubt" in _row(conn, outbound_id)["error"]
    rounds = _until_sent(p, transport, outbound_id)
    row = _row(conn, outbound_id)
    [submit] = smsc.submits
    print(f"\n[fault] submit answered {1.5} s late (timeout {TIMEOUT_S} s): "
          f"submits={len(smsc.submits)} sent_after_s={time.monotonic() - began:.1f} "
          f"deliver_rounds={1 + len(rounds)} attempts={row['attempts']} "
          f"transport_id={row['transport_id']}")
    assert (row["state"], row["transport_id"]) == ("sent", submit.message_id)


def test_a_submit_never_answered_is_sent_again_once_after_a_wait(conn, p, smsc, transport):
    outbound_id = _queue_one(conn)
    smsc.answer_after.append(NEVER)
    began = time.monotonic()
    assert _deliver(p, transport, outbound_id).retry == [outbound_id]
    held = _deliver(p, transport, outbound_id)     # too soon: held, not sent, not an attempt
    assert held.retry == [outbound_id] and 0 < held.wait_s <= RESEND_AFTER_S
    assert len(smsc.submits) == 1 and _row(conn, outbound_id)["attempts"] == 1
    _until_sent(p, transport, outbound_id)
    row = _row(conn, outbound_id)
    print(f"\n[fault] submit never answered (timeout {TIMEOUT_S} s, resent after "
          f"{RESEND_AFTER_S} s): submits={len(smsc.submits)} "
          f"sent_after_s={time.monotonic() - began:.1f} attempts={row['attempts']} "
          f"possible_duplicate={row['possible_duplicate']}")
    assert len(smsc.submits) == 2 and row["state"] == "sent"
    assert row["transport_id"] == smsc.submits[1].message_id


def test_a_part_sent_again_in_doubt_is_flagged_as_a_possible_duplicate(conn, p, smsc,
                                                                       transport):
    outbound_id = _queue_one(conn)
    smsc.answer_after.append(NEVER)
    _until_sent(p, transport, outbound_id)
    assert _row(conn, outbound_id)["possible_duplicate"] is True


def test_a_part_twice_unanswered_is_not_sent_a_third_time_and_converges(conn, p, smsc,
                                                                        transport):
    outbound_id = _queue_one(conn)
    smsc.answer_after.extend([NEVER, NEVER])
    rounds = 0
    until = time.monotonic() + 2 * RESEND_AFTER_S + 2
    while time.monotonic() < until:
        rounds += 1
        done = _deliver(p, transport, outbound_id)
        assert not done.sent
        time.sleep(max(min(done.wait_s, 0.5), 0.2))
    row = _row(conn, outbound_id)
    assert len(smsc.submits) == 2 and row["state"] == "queued"
    assert "twice without an answer" in row["error"]
    smsc.answer_held()                     # the SMSC catches up at last
    _until_sent(p, transport, outbound_id)
    row = _row(conn, outbound_id)
    print(f"\n[fault] submit unanswered twice: submits={len(smsc.submits)} "
          f"deliver_rounds_held={rounds} then state={row['state']} "
          f"transport_id={row['transport_id']} attempts={row['attempts']}")
    # Both were taken (the one duplicate); whichever answer the link read first is kept.
    assert len(smsc.submits) == 2 and row["state"] == "sent"
    assert row["transport_id"] in {s.message_id for s in smsc.submits}


def test_a_receipt_before_the_submit_answer_gives_the_final_state(conn, p, smsc, receipts,
                                                                  transport):
    outbound_id = _queue_one(conn)
    smsc.receipts = "before"
    assert _deliver(p, transport, outbound_id).sent == [outbound_id]
    row = _row(conn, outbound_id)
    [(receipt_at, receipt_id, receipt_status)] = smsc.receipted
    [(answer_at, answer_id)] = smsc.answered
    print(f"\n[fault] receipt before the submit answer: receipt_taken_us_before_answer="
          f"{1e6 * (answer_at - receipt_at):.0f} state={row['state']} "
          f"delivery={row['delivery']}")
    assert receipt_at < answer_at and receipt_id == answer_id and receipt_status == 0
    assert (row["state"], row["transport_id"], row["delivery"]) == ("sent", answer_id,
                                                                    "delivered")


def test_a_receipt_before_an_answer_that_comes_late_gives_the_final_state(conn, p, smsc,
                                                                          receipts, transport):
    outbound_id = _queue_one(conn)
    smsc.receipts = "before"
    smsc.answer_after.append(1.0)
    _until_sent(p, transport, outbound_id)
    row = _row(conn, outbound_id)
    print(f"\n[fault] receipt, then the submit answer 1.0 s late: submits={len(smsc.submits)} "
          f"state={row['state']} delivery={row['delivery']}")
    assert len(smsc.submits) == 1
    assert (row["state"], row["delivery"]) == ("sent", "delivered")


def test_a_receipt_that_never_comes_leaves_the_part_sent_and_listed(conn, p, smsc, receipts,
                                                                    transport):
    outbound_id = _queue_one(conn)
    assert _deliver(p, transport, outbound_id).sent == [outbound_id]
    time.sleep(1.0)
    again = _deliver(p, transport, outbound_id)   # a redelivered task: nothing to send
    found = messages.stale(conn, older_than_s=0, limit=10)
    stale = found.replies + found.bulk
    awaiting = conn.execute("SELECT id FROM outbound WHERE state = 'sent' "
                            "AND delivery IS NULL").fetchall()
    row = _row(conn, outbound_id)
    print(f"\n[fault] receipt never comes: submits={len(smsc.submits)} state={row['state']} "
          f"delivery={row['delivery']} awaiting_receipt={len(awaiting)} "
          f"reconciler_takes={len(stale)}")
    assert len(smsc.submits) == 1 and again.sent == again.retry == []
    assert (row["state"], row["delivery"]) == ("sent", None)
    assert awaiting == [(outbound_id,)] and stale == []


# --- the whole gateway: Celery's retries and countdowns, beat's reconciler ------------------

def _gateway(gateway_on, redis_url: str, smsc: Smsc, *, beat: bool = False,
             **env: str) -> Gateway:
    gw = gateway_on(redis_url, beat=beat,
                    transport=f"smpp://govsms:pw@127.0.0.1:{smsc.port}?tps=50"
                              f"&timeout_s=1&resend_after_s=4",
                    GOVSMS_SMPP_RECEIVER=f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}"
                                         "?mode=transceiver", **env)
    smsc.wait_for_receiver(30)
    return gw


def _send(gw: Gateway) -> int:
    response = httpx.post(f"{gw.settings.ingest_url}/v1/messages/outbound",
                          headers={"Authorization": f"Bearer {PORTAL_SECRET}"},
                          json={"to": "+77013330001", "text": TEXT, "sender": "EGOV"})
    return response.json()["id"]


def _sent(conn: psycopg.Connection, outbound_id: int) -> dict | None:
    row = _row(conn, outbound_id)
    return row if row["state"] == "sent" else None


@pytest.mark.slow
def test_gateway_a_late_answer_after_its_receipt_is_sent_once_and_delivered(
        redis_server_own, gateway_on, smsc, conn):
    gw = _gateway(gateway_on, redis_server_own.spec.url, smsc)
    smsc.receipts = "before"
    smsc.answer_after.append(2.5)
    began = time.monotonic()
    outbound_id = _send(gw)
    row = wait_for(lambda: _sent(conn, outbound_id), 30, "the part sent")
    wait_for(lambda: _row(conn, outbound_id)["delivery"], 10, "its receipt applied")
    row = _row(conn, outbound_id)
    print(f"\n[fault] gateway, answer 2.5 s late after its receipt: submits={len(smsc.submits)} "
          f"sent_after_s={time.monotonic() - began:.1f} attempts={row['attempts']} "
          f"delivery={row['delivery']}")
    assert len(smsc.submits) == 1
    assert (row["transport_id"], row["delivery"]) == (smsc.submits[0].message_id, "delivered")


@pytest.mark.slow
def test_gateway_a_submit_never_answered_is_sent_twice_at_most(
        redis_server_own, gateway_on, smsc, conn):
    gw = _gateway(gateway_on, redis_server_own.spec.url, smsc)
    smsc.answer_after.append(NEVER)
    began = time.monotonic()
    outbound_id = _send(gw)
    row = wait_for(lambda: _sent(conn, outbound_id), 30, "the part sent")
    took = time.monotonic() - began
    time.sleep(5)                          # nothing more goes out afterwards
    print(f"\n[fault] gateway, first answer never comes: submits={len(smsc.submits)} "
          f"sent_after_s={took:.1f} attempts={row['attempts']} "
          f"possible_duplicate={row['possible_duplicate']}")
    assert len(smsc.submits) == 2
    assert row["transport_id"] == smsc.submits[1].message_id


@pytest.mark.slow
def test_gateway_a_receipt_that_never_comes_leaves_the_part_sent(
        redis_server_own, gateway_on, smsc, conn):
    gw = _gateway(gateway_on, redis_server_own.spec.url, smsc, beat=True,
                  GOVSMS_RECONCILE_EVERY_S="1", GOVSMS_RECONCILE_AFTER_S="2")
    outbound_id = _send(gw)
    wait_for(lambda: _sent(conn, outbound_id), 30, "the part sent")
    time.sleep(8)                          # several rounds of the reconciler
    row = _row(conn, outbound_id)
    print(f"\n[fault] gateway, no receipt ever: submits={len(smsc.submits)} "
          f"state={row['state']} delivery={row['delivery']} waited_s=8")
    assert len(smsc.submits) == 1 and (row["state"], row["delivery"]) == ("sent", None)


# --- the `govsms smpp-ingest` process against hostile deliver_sm ----------------------------

@pytest.fixture
def smpp_ingest(smsc: Smsc, settings, tmp_path) -> Iterator[subprocess.Popen]:
    """`govsms smpp-ingest` as its own process, bound to the test SMSC."""
    env = {**os.environ, "GOVSMS_DATABASE_URL": settings.database_url,
           "GOVSMS_REDIS_URL": settings.redis_url, "GOVSMS_DATA_DIR": str(tmp_path),
           "GOVSMS_BRIDGE_SECRET": settings.bridge_secret.get_secret_value(),
           "GOVSMS_SECRET_KEY": settings.secret_key.get_secret_value(),
           "GOVSMS_INGEST_MAX_BACKLOG": "0",
           # Transceiver: smpp34 never takes a receiver's deliver_sm_resp (test_smpp_ingest).
           "GOVSMS_SMPP_RECEIVER": f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}"
                                   "?mode=transceiver"}
    with open(tmp_path / "smpp-ingest.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "workers.cli", "smpp-ingest"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        smsc.wait_for_receiver(30)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def test_hostile_deliver_sm_becomes_dead_letters_and_the_link_goes_on(conn, smsc, smpp_ingest):
    mo = {"source_addr_ton": 1, "data_coding": 0}
    statuses = [
        smsc.deliver("77011234567", "1414", b"\x05\x00\x03\x07", esm_class=0x40, **mo),
        smsc.deliver("", "1414", encoding.encode_gsm7("hello"), **mo),
        smsc.deliver("7701\x01234567", "1414", encoding.encode_gsm7("hello"), **mo),
    ]
    part = encoding.encode("Ж" * 67, "ucs2")
    statuses += [smsc.deliver("77011234567", "1414", encoding.concat_udh(9, 255, n) + part,
                              source_addr_ton=1, data_coding=8, esm_class=0x40)
                 for n in range(1, 256)]
    statuses.append(smsc.deliver("77011234567", "1414", encoding.encode_gsm7("techosmotr"),
                                 **mo))
    letters = conn.execute("SELECT task, reason, inbound_id, outbound_id FROM dead_letters "
                           "ORDER BY id").fetchall()
    inbound = conn.execute("SELECT sender, text FROM inbound").fetchall()
    print(f"\n[fault] hostile deliver_sm: answers={sorted(set(statuses))} "
          f"dead_letters={len(letters)} inbound={len(inbound)}")
    assert set(statuses) == {0}          # nothing left for the SMSC to deliver again
    assert [(t, i, o) for t, _, i, o in letters] == [("smpp-ingest", None, None)] * 4
    assert all("77011234567" not in reason for _, reason, _, _ in letters)
    assert inbound == [("+77011234567", "techosmotr")]
