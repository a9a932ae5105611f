"""End to end on 1414: ingest HTTP -> Redis -> real Celery workers -> PostgreSQL -> file transport."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis

from tests.support.gateway import Gateway, gateway_settings, running_gateway, wait_for
from tests.support.keys import SECRET
from tests.support.personas import add_persona, expected_text, load_personas
from tests.support.servers import claimed_redis_db
from workers.app import create_app
from workers.local import demo
from workers.local.demo import every_row_in_every_keyword
from workers.status import RETRIES_KEY, SENT_KEY
from workers.tasks import RECONCILE

pytestmark = pytest.mark.e2e

NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway")
    with running_gateway(gateway_settings(database_url, redis_url, folder, SECRET), folder) as gw:
        yield gw


@pytest.fixture
def gw(gateway: Gateway, conn: psycopg.Connection) -> Gateway:
    """The running gateway with an empty database (the `conn` fixture) and an empty outbox."""
    gateway.settings.outbox.write_text("")
    return gateway


def test_a_text_that_names_no_service_gets_the_not_found_reply(gw, conn):
    response = gw.post(**{"from": "+77011234567", "to": "1414", "text": "hello", "id": "e2e-1"})
    assert response.status_code == 202
    inbound_id = response.json()["id"]
    [sms] = gw.replies_to(inbound_id)
    assert (sms["from"], sms["to"], sms["text"]) == ("1414", "+77011234567", NOT_FOUND)
    received, sent = conn.execute(
        "SELECT i.received_at, o.sent_at FROM inbound i JOIN outbound o ON o.inbound_id = i.id "
        "WHERE i.id = %s AND o.state = 'sent'", (inbound_id,)).fetchone()
    assert sent - received < dt.timedelta(seconds=60)


def test_housing_queue_for_the_sender_is_answered_from_postgresql(gw, conn):
    add_persona(conn, phone="+77011234567", iin="880102300452", housing=1234)
    response = gw.post(**{"from": "87011234567", "to": "1414", "text": "4", "id": "e2e-2"})
    [sms] = gw.replies_to(response.json()["id"])
    assert sms["text"] == "Ochered' na zhil'e: IIN 8801***0452, nomer v ocheredi 1234, data postanovki 12.03.2019."
    assert sms["to"] == "+77011234567"
    assert conn.execute("SELECT service, state FROM inbound").fetchone() == (
        "housing_queue", "answered")


def test_kannel_get_url_round_trip(gw):
    response = httpx.get(f"{gw.settings.ingest_url}/sms/inbound", params={
        "from": "+77011234567", "to": "1414", "text": "Привет", "id": "kannel-1",
        "smsc": "fake", "token": SECRET})
    assert response.status_code == 202
    sms = wait_for(lambda: gw.sent(), what="a reply")
    assert [s["text"] for s in sms] == [NOT_FOUND]


def test_the_same_inbound_id_posted_twice_gives_one_reply(gw, conn):
    fields = {"from": "+77011234567", "to": "1414", "text": "hello", "id": "twice"}
    first, second = gw.post(**fields), gw.post(**fields)
    assert first.status_code == second.status_code == 202
    assert second.json() == {"id": first.json()["id"], "duplicate": True}
    gw.replies_to(first.json()["id"])
    third = gw.post(**fields)  # long after the answer: still not processed again
    assert third.json()["duplicate"] is True
    time.sleep(2)
    assert len(gw.sent()) == 1
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (1,)


def test_many_messages_each_get_exactly_one_reply(gw, conn):
    started = int(time.time())
    ids = [gw.post(**{"from": f"+7701000{n:04d}", "to": "1414", "text": f"hello {n}",
                      "id": f"many-{n}"}).json()["id"] for n in range(100)]
    wait_for(lambda: len(gw.sent()) >= 100, 30, "100 replies")
    time.sleep(1)
    assert sorted(s["inbound_id"] for s in gw.sent()) == sorted(ids)
    # Each kind of task ran on the worker of its queue, and only there.
    tasks = ("dispatch", "answer", "deliver")
    ran = {name: {task for task in tasks if f"Task govsms.{task}[" in gw.log(name)}
           for name in ("worker-inbound", "worker-outbound")}
    assert ran == {"worker-inbound": {"dispatch"}, "worker-outbound": {"deliver"}}
    # The senders counted each part they sent, per second, for the ingest's drain rate.
    client = redis.Redis.from_url(gw.settings.redis_url)
    counted = client.mget([SENT_KEY.format(s) for s in range(started, int(time.time()) + 1)])
    assert sum(int(n or 0) for n in counted) == 100


def test_a_message_whose_task_was_lost_is_answered_by_the_reconciler(gw, conn):
    # Recorded, but its task never reached Redis (as after a lost queue).
    inbound_id, = conn.execute(
        "INSERT INTO inbound (source, external_id, sender, shortcode, text, received_at) "
        "VALUES ('test', 'lost', '+77011234567', '1414', 'hello', now() - interval '1 minute') "
        "RETURNING id").fetchone()
    create_app(gw.settings).send_task(RECONCILE)
    [sms] = gw.replies_to(inbound_id)
    assert sms["text"] == NOT_FOUND


def test_every_seed_table_row_in_each_language_through_the_pipeline(gw, conn):
    load_personas(conn)
    posted = {}
    for n, (persona, text, outcome) in enumerate(every_row_in_every_keyword()):
        response = gw.post(**{"from": persona.phone, "to": "1414", "text": text, "id": f"ex-{n}"})
        posted[response.json()["id"]] = expected_text(text, outcome)
    wait_for(lambda: len(gw.sent()) >= len(posted), 30, "every reply")
    assert {s["inbound_id"]: s["text"] for s in gw.sent()} == posted
    late = conn.execute("SELECT count(*) FROM inbound i JOIN outbound o ON o.inbound_id = i.id "
                        "WHERE o.sent_at - i.received_at > interval '60 seconds'").fetchone()
    assert late == (0,)


@pytest.fixture
def impatient(database_url: str, redis_server: str, tmp_path, conn) -> Iterator[Gateway]:
    """A gateway with a 15 s SLA and 500 ms statements, to see a store outage play out.

    It has a Redis db of its own: the module's gateway must not take its tasks.
    """
    with claimed_redis_db(redis_server) as redis_url:
        settings = gateway_settings(database_url, redis_url, tmp_path, SECRET)
        gw = Gateway(settings, tmp_path, env_extra={"GOVSMS_SLA_SECONDS": "15",
                                                     "GOVSMS_STATEMENT_TIMEOUT_MS": "500"})
        try:
            yield gw.start()
        finally:
            gw.stop()


def test_a_slow_registry_delays_only_its_own_service(gw, conn, database_url):
    load_personas(conn)
    with psycopg.connect(database_url) as locker:
        # Every read of vehicle inspections now waits for its 5 s statement timeout.
        locker.execute("LOCK TABLE vehicles.inspections IN ACCESS EXCLUSIVE MODE")
        for n in range(8):
            gw.post(**{"from": demo.AIGERIM.phone, "to": "1414", "text": "8 123ABC01",
                       "id": f"slow-{n}"})
        time.sleep(0.5)  # the inspection requests are taken first
        started = time.monotonic()
        housing = gw.post(**{"from": demo.AIGERIM.phone, "to": "1414", "text": "4", "id": "fast"})
        [sms] = gw.replies_to(housing.json()["id"], timeout_s=30)
        waited = time.monotonic() - started
        locker.rollback()
    assert sms["text"].startswith("Ochered' na zhil'e: IIN 8801***0459")
    assert waited < 3.0, f"the housing reply waited {waited:.1f} s behind the inspections"
    # Once the registry answers again, the inspection requests are answered too.
    wait_for(lambda: len(gw.sent()) == 9, 30, "the delayed inspection replies")
    assert {s["text"] for s in gw.sent()} - {sms["text"]} == {
        expected_text("8 123ABC01", "tech_inspection.valid")}


@pytest.mark.skipif(os.environ.get("GOVSMS_TEST_PGBOUNCER") == "1",
                    reason="its 500 ms statements ride on the connection, which a transaction-mode "
                           "pooler cannot carry (the database's 5 s holds there)")
def test_a_store_that_stays_down_gets_the_unavailable_reply_in_time(impatient, conn, database_url):
    load_personas(conn)
    with psycopg.connect(database_url) as locker:
        # Holding this lock makes every read of the registry run into its statement timeout.
        locker.execute("LOCK TABLE vehicles.inspections IN ACCESS EXCLUSIVE MODE")
        response = impatient.post(**{"from": demo.AIGERIM.phone, "to": "1414",
                                     "text": "8 123ABC01", "id": "down-1"})
        [sms] = impatient.replies_to(response.json()["id"], timeout_s=30)
        locker.rollback()
    assert sms["text"] == "Usluga vremenno nedostupna. Povtorite zapros pozzhe."
    retries = impatient.log("worker-svc.tech_inspection").count("store unavailable")
    assert retries >= 1
    counted = redis.Redis.from_url(impatient.settings.redis_url).hget(RETRIES_KEY, "store")
    assert int(counted) == retries  # what the metrics endpoint reports as govsms_retries
    reason, = conn.execute("SELECT reason FROM dead_letters").fetchone()
    assert reason.startswith("tech_inspection unavailable")
    received, sent = conn.execute("SELECT i.received_at, o.sent_at FROM inbound i "
                                  "JOIN outbound o ON o.inbound_id = i.id").fetchone()
    assert sent - received < dt.timedelta(seconds=15)
