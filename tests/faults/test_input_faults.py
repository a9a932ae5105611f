"""Faults of input: the same message again an hour later, and fuzzed bridge requests."""

from __future__ import annotations

import string

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replies.transports.fake import MemoryTransport
from tests.support.keys import SECRET
from tests.support.pipeline import make_pipeline
from workers import pipeline
from workers.ingest.http import create_app

pytestmark = pytest.mark.fault
TOKEN = {"X-Bridge-Token": SECRET}


@pytest.fixture
def client(settings, conn):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _answer_all(p, conn) -> None:
    ids = [r[0] for r in conn.execute("SELECT id FROM inbound WHERE state IN "
                                      "('received', 'dispatched')")]
    routed = pipeline.dispatch(p, ids)
    queued = list(routed.outbound)
    for service, service_ids in routed.services.items():
        queued += pipeline.answer(p, service, service_ids)
    pipeline.deliver(p.pool, MemoryTransport(), p.sealer, queued)


def test_the_same_inbound_id_three_times_once_an_hour_later_gets_one_reply(client, conn,
                                                                            database_url):
    p = make_pipeline(database_url)
    body = {"from": "+77011234567", "to": "1414", "text": "hello", "id": "thrice"}
    try:
        assert client.post("/v1/messages/inbound", json=body, headers=TOKEN).status_code == 202
        _answer_all(p, conn)
        assert client.post("/v1/messages/inbound", json=body, headers=TOKEN).json()["duplicate"]
        # An hour later, as if the bridge replayed its queue.
        conn.execute("UPDATE inbound SET received_at = received_at - interval '1 hour'")
        conn.execute("UPDATE outbound SET created_at = created_at - interval '1 hour', "
                     "sent_at = sent_at - interval '1 hour'")
        assert client.post("/v1/messages/inbound", json=body, headers=TOKEN).json()["duplicate"]
        _answer_all(p, conn)
    finally:
        p.pool.close()
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (1,)
    assert conn.execute("SELECT count(*), count(*) FILTER (WHERE state = 'sent') FROM outbound"
                        ).fetchone() == (1, 1)
    print("\n[fault] same id three times, an hour apart: 1 inbound, 1 reply")


NASTY = st.sampled_from([
    "\x00", "\u200f", "\u202e", "\u200b", "\ufeff", "٤٥٦", "４", "€", "^{}\\[~]|", "Ё", "ә",
    "🙂", "\r\n", "\t", "'", "%", "&", "+", "=", "?", "TK,", ";", "8 ", "4 ", "Техосмотр ",
])
TEXTS = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(NASTY, st.text(string.printable, max_size=5)), max_size=30).map("".join),
    st.integers(min_value=0, max_value=10**13).map(lambda n: f"4 {n}"),
    st.just("Очередь на жилье " * 100),  # 1,700 UCS-2 characters
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=TEXTS, sender=st.one_of(st.text(max_size=20), st.just("+77011234567")),
       shortcode=st.sampled_from(["1414", "8188", "3344", "", "1414\x00"]))
def test_fuzzed_bridge_requests_never_crash_and_each_kept_message_ends_once(
        client, conn, database_url, text, sender, shortcode):
    """Each message kept ends with one reply, or one recorded suppression (a sender that is
    no phone number), never a dead letter."""
    conn.execute("TRUNCATE dead_letters, outbound, inbound RESTART IDENTITY CASCADE")
    response = client.post("/v1/messages/inbound", headers=TOKEN,
                           json={"from": sender, "to": shortcode, "text": text, "id": "fuzz"})
    kannel = client.get("/sms/inbound", params={"from": sender, "to": shortcode, "text": text,
                                                "id": "fuzz-k", "token": SECRET})
    assert response.status_code in (202, 422), response.text
    assert kannel.status_code in (202, 400), kannel.text
    kept = conn.execute("SELECT count(*) FROM inbound").fetchone()[0]
    p = make_pipeline(database_url)
    try:
        _answer_all(p, conn)
    finally:
        p.pool.close()
    answered = conn.execute("SELECT count(DISTINCT inbound_id) FROM outbound WHERE state = 'sent'"
                            ).fetchone()[0]
    dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    suppressed = conn.execute("SELECT count(*) FROM suppressions").fetchone()[0]
    assert answered + suppressed + dead == kept and dead == 0
