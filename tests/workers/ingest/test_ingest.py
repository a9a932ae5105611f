"""The ingest HTTP endpoints, on the real PostgreSQL and Redis (Celery publishes for real)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from tests.support.keys import SECRET
from workers.ingest.http import create_app
from workers.local import embedded
from workers.settings import Settings

TOKEN = {"X-Bridge-Token": SECRET}
STALL_S = 12.0  # longer than the ingest's publish may take on a stalled broker (about 6 s)
KANNEL = {"from": "87011234567", "to": "1414", "text": "Техосмотр 123ABC01", "id": "k-1",
          "smsc": "beeline"}


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    client.delete("inbound")
    yield client
    client.delete("inbound")


@pytest.fixture
def client(settings: Settings, conn: psycopg.Connection, broker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def queued_ids(broker: redis.Redis) -> list[list[int]]:
    """The id lists of the dispatch tasks waiting on the inbound queue, oldest first."""
    bodies = [json.loads(raw) for raw in reversed(broker.lrange("inbound", 0, -1))]
    import base64

    return [json.loads(base64.b64decode(b["body"]))[0][0] for b in bodies]


def test_kannel_get_url_is_recorded_and_enqueued(client, conn, broker):
    response = client.get("/sms/inbound", params={**KANNEL, "token": SECRET})
    assert response.status_code == 202
    row = conn.execute("SELECT id, source, external_id, sender, shortcode, text, state "
                       "FROM inbound").fetchone()
    assert row[1:] == ("beeline", "k-1", "+77011234567", "1414", "Техосмотр 123ABC01", "received")
    assert queued_ids(broker) == [[row[0]]]


def test_kannel_post_form_with_header_token(client, conn):
    response = client.post("/sms/inbound", data=KANNEL, headers=TOKEN)
    assert response.status_code == 202
    assert conn.execute("SELECT text FROM inbound").fetchone() == ("Техосмотр 123ABC01",)


def test_kannel_post_takes_a_url_encoded_form_only(client, conn):
    response = client.post("/sms/inbound", json=KANNEL, headers=TOKEN)
    assert response.status_code == 415 and "x-www-form-urlencoded" in response.json()["detail"]
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (0,)


def test_json_inbound_answers_the_id(client, conn):
    response = client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
    assert response.status_code == 202
    body = response.json()
    assert body["duplicate"] is False
    assert conn.execute("SELECT id FROM inbound").fetchone() == (body["id"],)


def test_a_repeat_is_kept_once_and_not_enqueued_once_answered(client, conn, broker):
    first = client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN).json()
    conn.execute("UPDATE inbound SET state = 'answered'")
    second = client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
    assert second.status_code == 202
    assert second.json() == {"id": first["id"], "duplicate": True}
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (1,)
    assert queued_ids(broker) == [[first["id"]]]


def test_a_repeat_of_an_unanswered_message_is_enqueued_again(client, conn, broker):
    # Its first enqueue may have failed after it was recorded; the pipeline is idempotent.
    first = client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN).json()
    client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
    assert queued_ids(broker) == [[first["id"]], [first["id"]]]


def test_the_same_id_from_another_link_is_another_message(client, conn):
    client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
    client.post("/v1/messages/inbound", json={**KANNEL, "smsc": "kcell"}, headers=TOKEN)
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (2,)


@pytest.mark.parametrize("headers", [{}, {"X-Bridge-Token": "wrong"}, {"X-Bridge-Token": ""}])
def test_without_the_secret_nothing_gets_in(client, conn, headers):
    assert client.post("/v1/messages/inbound", json=KANNEL, headers=headers).status_code == 401
    assert client.get("/sms/inbound", params={**KANNEL, "token": "nope"}).status_code == 401
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (0,)


def test_an_address_outside_the_allowlist_is_refused(settings, conn, broker):
    restricted = settings.model_copy(update={"bridge_allow_ips": ["10.9.8.0/24"]})
    with TestClient(create_app(restricted)) as test_client:  # TestClient calls from "testclient"
        response = test_client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
    assert response.status_code == 403
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (0,)


@pytest.mark.parametrize("fields", [{"to": "1414", "text": "x"}, {"from": "8701", "text": "x"}])
def test_a_message_without_sender_or_short_code_is_a_client_error(client, fields):
    assert client.get("/sms/inbound", params={**fields, "token": SECRET}).status_code == 400
    assert client.post("/v1/messages/inbound", json=fields, headers=TOKEN).status_code == 422


def test_with_redis_stopped_the_bridge_gets_503(settings, conn, tmp_path):
    spec = embedded.redis_spec(tmp_path)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL)
    try:
        embedded.wait_ready(spec, lambda: server.poll() is None)
        own = settings.model_copy(update={"redis_url": spec.url})
        with TestClient(create_app(own)) as test_client:
            ok = test_client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
            assert ok.status_code == 202
            server.kill()
            server.wait()
            down = test_client.post("/v1/messages/inbound", json={**KANNEL, "id": "k-2"},
                                    headers=TOKEN)
            assert down.status_code == 503
            assert down.headers["Retry-After"]
            kannel = test_client.get("/sms/inbound", params={**KANNEL, "id": "k-3",
                                                             "token": SECRET})
            assert kannel.status_code == 503
    finally:
        server.kill()
        server.wait()


def test_with_redis_stalled_the_bridge_gets_503_before_it_resumes(settings, conn, tmp_path):
    """A stalled broker (SIGSTOP: connections open, no answers) must not hold the bridge."""
    spec = embedded.redis_spec(tmp_path)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL)
    answers: list[int] = []
    try:
        embedded.wait_ready(spec, lambda: server.poll() is None)
        own = settings.model_copy(update={"redis_url": spec.url})
        with TestClient(create_app(own)) as test_client:
            def post() -> None:
                answers.append(test_client.post("/v1/messages/inbound", headers=TOKEN,
                                                json={**KANNEL, "id": "stall-1"}).status_code)

            assert test_client.post("/v1/messages/inbound", json=KANNEL,
                                    headers=TOKEN).status_code == 202
            server.send_signal(signal.SIGSTOP)
            during = threading.Thread(target=post)
            during.start()
            during.join(STALL_S)
            server.send_signal(signal.SIGCONT)
            during.join()
            assert answers == [503]  # answered while Redis was still stopped
            # It was kept all the same: the bridge's retry finds it and enqueues it again.
            kept = conn.execute("SELECT state FROM inbound WHERE external_id = 'stall-1'")
            assert kept.fetchone() == ("received",)
            post()
            assert answers == [503, 202]
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait()


def test_with_postgresql_unreachable_the_bridge_gets_503(settings, broker):
    gone = settings.model_copy(update={
        "database_url": f"postgresql://postgres@127.0.0.1:{embedded.free_port()}/none"})
    with TestClient(create_app(gone)) as test_client:
        response = test_client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN)
    assert response.status_code == 503
    assert queued_ids(broker) == []


def test_replies_of_a_message_are_listed_for_the_bridge(client, conn):
    inbound_id = client.post("/v1/messages/inbound", json=KANNEL, headers=TOKEN).json()["id"]
    conn.execute("INSERT INTO outbound (inbound_id, sender, recipient, text, deadline) "
                 "VALUES (%s, '1414', '+77011234567', 'hi', now())", (inbound_id,))
    replies = client.get(f"/v1/messages/inbound/{inbound_id}/replies", headers=TOKEN,
                         params={"id": KANNEL["id"], "smsc": KANNEL["smsc"]}).json()
    assert [(r["text"], r["state"]) for r in replies["replies"]] == [("hi", "queued")]
    assert client.get(f"/v1/messages/inbound/{inbound_id}/replies").status_code == 401


def test_messages_arriving_together_are_recorded_and_enqueued_in_batches(settings, conn, broker):
    import asyncio

    import httpx

    async def post_all() -> list[httpx.Response]:
        app = create_app(settings.model_copy(update={"ingest_linger_ms": 300}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
                return await asyncio.gather(*(
                    http.post("/v1/messages/inbound", headers=TOKEN,
                              json={**KANNEL, "id": f"b-{n}", "text": f"TO {n}"})
                    for n in range(40)))

    responses = asyncio.run(post_all())
    assert [r.status_code for r in responses] == [202] * 40
    ids = sorted(r.json()["id"] for r in responses)
    batches = queued_ids(broker)
    assert len(batches) == 1 and sorted(batches[0]) == ids
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (40,)



def test_while_the_dispatch_queue_has_a_backlog_a_batch_gathers_longer(settings, conn, broker):
    import asyncio

    import httpx

    async def post_spaced() -> list[httpx.Response]:
        app = create_app(settings.model_copy(update={"ingest_linger_ms": 10,
                                                     "ingest_linger_max_ms": 2000}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
                def post(n: int) -> Any:
                    return http.post("/v1/messages/inbound", headers=TOKEN,
                                     json={**KANNEL, "id": f"g-{n}", "text": f"TO {n}"})

                first = await post(0)  # the queue is empty: written after 10 ms, alone
                later = []
                for n in range(1, 20):  # its task waits (no worker here): a backlog
                    later.append(asyncio.create_task(post(n)))
                    await asyncio.sleep(0.02)  # twice the short linger between two
                return [first, *await asyncio.gather(*later)]

    responses = asyncio.run(post_spaced())
    assert [r.status_code for r in responses] == [202] * 20
    ids = [r.json()["id"] for r in responses]
    assert [sorted(batch) for batch in queued_ids(broker)] == [ids[:1], sorted(ids[1:])]


def test_a_bridge_hands_over_a_batch_kept_whole_answered_in_order(client, conn, broker):
    batch = [{**KANNEL, "id": f"q-{n}", "text": f"TO {n}"} for n in range(5)]
    response = client.post("/v1/messages/inbound/batch", headers=TOKEN, json=batch)
    assert response.status_code == 202
    answers = response.json()
    rows = conn.execute("SELECT id, external_id FROM inbound ORDER BY id").fetchall()
    assert [a["id"] for a in answers] == [r[0] for r in rows]
    assert [r[1] for r in rows] == [f"q-{n}" for n in range(5)]
    assert queued_ids(broker) == [[r[0] for r in rows]]
    again = client.post("/v1/messages/inbound/batch", headers=TOKEN, json=batch[:2])
    assert [a["duplicate"] for a in again.json()] == [True, True]


@pytest.mark.parametrize("batch", [[], [{**KANNEL, "from": ""}, KANNEL],
                                   [{**KANNEL, "id": str(n)} for n in range(501)]])
def test_an_invalid_or_oversized_batch_is_refused_whole(client, conn, batch):
    response = client.post("/v1/messages/inbound/batch", headers=TOKEN, json=batch)
    assert response.status_code == 422
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (0,)


def test_past_its_backlog_the_ingest_refuses_until_the_replies_are_out(settings, conn, broker):
    import datetime as dt
    import time

    from workers import messages, pipeline
    from workers.ingest.accept import BACKLOG_CHECK_S

    def post(external_id: str) -> int:
        time.sleep(BACKLOG_CHECK_S)  # what the ingest counts is at most a second old
        return client.post("/v1/messages/inbound", headers=TOKEN,
                           json={**KANNEL, "id": external_id}).status_code

    app = create_app(settings.model_copy(update={"ingest_max_backlog": 3}))
    with TestClient(app) as client:
        assert [post(f"w-{n}") for n in range(4)] == [202] * 4
        time.sleep(BACKLOG_CHECK_S)
        refused = client.post("/v1/messages/inbound", headers=TOKEN, json={**KANNEL, "id": "w-4"})
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        # Answered, but its reply not yet sent: it still waits.
        [first] = messages.unfinished_inbound(conn, [inbound_id(conn, "w-0")])
        [part] = messages.add_replies(conn, [messages.NewReply(
            first, pipeline.to_parts("Otvet"), None, "test", dt.datetime.now(dt.UTC))])
        assert post("w-4") == 503
        conn.execute("UPDATE outbound SET state = 'sent' WHERE id = %s", (part,))
        assert post("w-4") == 202
    assert conn.execute("SELECT count(*) FROM inbound").fetchone() == (5,)


def test_what_it_admits_follows_the_rate_the_replies_go_out_at(settings, conn, broker,
                                                              monkeypatch):
    from workers import db
    from workers.app import create_app as create_celery
    from workers.ingest import accept

    monkeypatch.setattr(accept, "BACKLOG_FLOOR", 2)
    monkeypatch.setattr(accept, "BACKLOG_CHECK_S", 0)  # counted afresh for each message
    rate = [1.0]  # SMS sent per second lately, as the senders counted them
    pool = db.create_pool(settings.database_url, name="test-ingest", statement_timeout_ms=5000)
    ingest = accept.Ingest(settings.model_copy(update={"ingest_max_wait_s": 3}), pool,
                           create_celery(settings), drain=lambda: rate[0])

    def offer(n: int) -> bool:
        try:
            ingest.accept(accept.InboundSms(**{**KANNEL, "id": f"d-{n}"}))
            return True
        except accept.Unavailable:
            return False

    try:
        # 1 a second, 3 s at most: 3 may wait (the floor of 2 is less).
        assert [offer(n) for n in range(5)] == [True, True, True, True, False]
        rate[0] = 2.0  # the link sends faster now: 6 may wait
        assert [offer(n) for n in range(4, 7)] == [True, True, True]
        assert not offer(7)
        rate[0] = 0.0  # nothing sent lately: the floor only
        assert not offer(7)
    finally:
        pool.close()


def test_the_drain_rate_is_what_every_sender_counted_over_the_last_seconds(broker):
    from workers import status

    now = 1_000_000.0
    for key in broker.keys(status.SENT_KEY.format("*")):
        broker.delete(key)
    status.count_sent(broker, 7, now - 1)  # two senders in the same second
    status.count_sent(broker, 3, now - 1)
    status.count_sent(broker, 15, now - status.DRAIN_WINDOW_S)
    status.count_sent(broker, 100, now - status.DRAIN_WINDOW_S - 1)  # too old
    status.count_sent(broker, 100, now)  # this second is not over
    assert status.drain_rate(broker, now) == 25 / status.DRAIN_WINDOW_S
    assert 0 < broker.ttl(status.SENT_KEY.format(int(now))) <= 120


def inbound_id(conn, external_id: str) -> int:
    return conn.execute("SELECT id FROM inbound WHERE external_id = %s", (external_id,)).fetchone()[0]
