"""The pipeline's steps as plain functions, on the real PostgreSQL, without Celery."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from replies.reply import Reply
from replies.transports import TransportError
from replies.transports.fake import MemoryTransport
from services.errors import StoreUnavailable
from services.registry import Registry, Service, default_registry
from tests.support.personas import add_persona
from tests.support.pipeline import PHONE, make_pipeline, receive
from workers import messages, pipeline

IIN = "880102300452"
NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."


@pytest.fixture
def p(conn: psycopg.Connection, database_url: str) -> Iterator[pipeline.Pipeline]:
    built = make_pipeline(database_url)
    yield built
    built.pool.close()


def reply_texts(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT text FROM outbound ORDER BY id")]


def test_a_text_that_names_no_service_is_answered_at_dispatch(conn, p):
    inbound_id = receive(conn, "hello")
    routed = pipeline.dispatch(p, [inbound_id])
    assert routed.services == {}
    assert len(routed.outbound) == 1
    assert reply_texts(conn) == [NOT_FOUND]
    state, = conn.execute("SELECT state FROM inbound WHERE id = %s", (inbound_id,)).fetchone()
    assert state == "answered"


def test_a_service_request_is_routed_to_its_service(conn, p):
    inbound_id = receive(conn, "4")
    routed = pipeline.dispatch(p, [inbound_id])
    assert routed.services == {"housing_queue": [inbound_id]}
    assert routed.outbound == []
    row = conn.execute("SELECT state, service FROM inbound WHERE id = %s", (inbound_id,)).fetchone()
    assert row == ("dispatched", "housing_queue")


def test_dispatching_twice_queues_one_reply(conn, p):
    inbound_id = receive(conn, "hello")
    first = pipeline.dispatch(p, [inbound_id])
    second = pipeline.dispatch(p, [inbound_id])
    assert len(first.outbound) == 1 and second.outbound == []
    assert reply_texts(conn) == [NOT_FOUND]


@pytest.mark.parametrize(("persona", "text", "expected"), [
    ({"housing": 1234}, "4",
     "Ochered' na zhil'e: IIN 8801***0452, nomer v ocheredi 1234, data postanovki 12.03.2019."),
    (None, "4", ("Vi ne mozhete poluchit spravku, Vas net v mobilnoi baze grazhdan. "
                 "Registraciu mozjno proiti na egov.kz I v Tsone.")),
    ({"status": "invalid", "housing": 1}, "4",
     ("Usluga ne mozhet byt' okazana. Vash status v gosudarstvennoy baze dannyh fizicheskikh "
      "lic ne validen.")),
    ({}, "4", ("Usluga ne mozhet byt' okazana. Po Vashemu zaprosu dannye ne naideny, "
               "prover'te vvedennye dannye.")),
    ({"housing": 7}, "4 880102300453",  # bad check digit
     ("Usluga ne mozhet byt' okazana. Po Vashemu zaprosu dannye ne naideny, "
      "prover'te vvedennye dannye.")),
], ids=["found", "not-in-mbg", "status-invalid", "no-data", "iin-invalid"])
def test_housing_queue_answers_every_row_of_its_table(conn, p, persona, text, expected):
    if persona is not None:
        add_persona(conn, phone=PHONE, iin=IIN, **persona)
    inbound_id = receive(conn, text)
    queued = pipeline.answer(p, "housing_queue", [inbound_id])
    assert len(queued) == 1
    assert reply_texts(conn) == [expected]


def test_housing_queue_for_another_person(conn, p):
    add_persona(conn, phone=PHONE, iin=IIN)
    add_persona(conn, phone="+77017654321", iin="900101300017", housing=55)
    inbound_id = receive(conn, "4 900101300017")
    pipeline.answer(p, "housing_queue", [inbound_id])
    assert reply_texts(conn) == [
        "Ochered' na zhil'e: IIN 9001***0017, nomer v ocheredi 55, data postanovki 12.03.2019."]


def test_a_service_without_handler_leaves_a_dead_letter(conn, database_url):
    p = make_pipeline(database_url, _registry_with(None))
    try:
        inbound_id = receive(conn, "4")
        assert pipeline.answer(p, "housing_queue", [inbound_id]) == []
    finally:
        p.pool.close()
    reason, = conn.execute("SELECT reason FROM dead_letters WHERE inbound_id = %s",
                           (inbound_id,)).fetchone()
    assert reason == "service housing_queue is not offered yet"
    assert conn.execute("SELECT state FROM inbound").fetchone() == ("dead",)


def _registry_with(handler) -> Registry:
    base = default_registry()["housing_queue"]
    return Registry([Service("housing_queue", base.syntax, handler)])


def _failing_for_one(_conn, request):
    if request.sender == "+77000000001":
        raise ZeroDivisionError
    return Reply("housing_queue", "no_data")


def _answer_bad_and_good(conn, database_url, registry: Registry) -> tuple[int, int]:
    p = make_pipeline(database_url, registry)
    try:
        bad = receive(conn, "4", sender="+77000000001", external_id="a")
        good = receive(conn, "4", sender="+77000000002", external_id="b")
        assert len(pipeline.answer(p, "housing_queue", [bad, good])) == 1
    finally:
        p.pool.close()
    assert conn.execute("SELECT inbound_id FROM outbound").fetchall() == [(good,)]
    return bad, good


def test_a_handler_bug_dead_letters_that_message_only(conn, database_url):
    bad, _ = _answer_bad_and_good(conn, database_url, _registry_with(_failing_for_one))
    assert conn.execute("SELECT inbound_id, reason FROM dead_letters").fetchall() == [
        (bad, "ZeroDivisionError in housing_queue")]


def test_a_batch_handler_bug_runs_the_batch_again_one_message_at_a_time(conn, database_url):
    def handle_many(conn_, requests):
        return [_failing_for_one(conn_, request) for request in requests]

    base = default_registry()["housing_queue"]
    registry = Registry([Service("housing_queue", base.syntax, _failing_for_one, handle_many)])
    bad, _ = _answer_bad_and_good(conn, database_url, registry)
    assert conn.execute("SELECT inbound_id FROM dead_letters").fetchall() == [(bad,)]


def test_a_store_failure_is_classified_retryable_and_keeps_nothing(conn, database_url):
    def handler(_conn, _request):
        raise psycopg.errors.QueryCanceled("statement timeout")

    p = make_pipeline(database_url, _registry_with(handler))
    try:
        inbound_id = receive(conn, "4")
        with pytest.raises(StoreUnavailable) as caught:
            pipeline.answer(p, "housing_queue", [inbound_id])
        assert caught.value.retryable
        assert reply_texts(conn) == []
        queued = pipeline.answer_unavailable(p, "housing_queue", [inbound_id], "QueryCanceled")
    finally:
        p.pool.close()
    assert len(queued) == 1
    assert reply_texts(conn) == ["Usluga vremenno nedostupna. Povtorite zapros pozzhe."]
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (1,)


def _queued_reply(conn: psycopg.Connection, p: pipeline.Pipeline) -> int:
    return pipeline.dispatch(p, [receive(conn, "hello")]).outbound[0]


def test_deliver_sends_once_even_when_redelivered(conn, p):
    outbound_id = _queued_reply(conn, p)
    transport = MemoryTransport()
    first = pipeline.deliver(p.pool, transport, p.sealer, [outbound_id])
    second = pipeline.deliver(p.pool, transport, p.sealer, [outbound_id])
    assert first.sent == [outbound_id] and second.sent == []
    assert [(s.recipient, s.sender, s.text) for s in transport.sent] == [(PHONE, "1414", NOT_FOUND)]
    assert conn.execute("SELECT state, attempts FROM outbound").fetchone() == ("sent", 1)


def test_deliver_keeps_a_retryable_failure_queued(conn, p):
    outbound_id = _queued_reply(conn, p)
    transport = MemoryTransport()
    transport.failures.append(TransportError("smsc busy", retryable=True))
    assert pipeline.deliver(p.pool, transport, p.sealer, [outbound_id]).retry == [outbound_id]
    assert conn.execute("SELECT state, attempts, error FROM outbound").fetchone() == (
        "queued", 1, "smsc busy")
    assert pipeline.deliver(p.pool, transport, p.sealer, [outbound_id]).sent == [outbound_id]


def test_deliver_fails_a_permanent_error_with_a_dead_letter(conn, p):
    outbound_id = _queued_reply(conn, p)
    transport = MemoryTransport()
    transport.failures.append(TransportError("unknown subscriber", retryable=False))
    assert pipeline.deliver(p.pool, transport, p.sealer, [outbound_id]).failed == [outbound_id]
    assert conn.execute("SELECT state FROM outbound").fetchone() == ("failed",)
    assert conn.execute("SELECT outbound_id, reason FROM dead_letters").fetchall() == [
        (outbound_id, "unknown subscriber")]


def test_give_up_fails_what_is_still_queued(conn, p):
    outbound_id = _queued_reply(conn, p)
    pipeline.give_up(p.pool, [outbound_id], "not sent after 10 retries")
    assert conn.execute("SELECT state FROM outbound").fetchone() == ("failed",)
    assert pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [outbound_id]).sent == []


def test_reconciler_finds_what_sat_unanswered(conn, p):
    receive(conn, "hello", external_id="fresh")
    old = receive(conn, "hello", external_id="old")
    conn.execute("UPDATE inbound SET received_at = now() - interval '2 minutes' WHERE id = %s",
                 (old,))
    found = messages.stale(conn, older_than_s=40, limit=10)
    assert found == messages.Stale([old], [], [])


def test_a_parse_over_its_budget_fails_its_batch_at_once(conn, database_url, monkeypatch):
    from parsers import Syntax

    def hangs(rest: str) -> dict:
        while True:  # a runaway parse: only the budget ends it
            pass
    slow = Service("slow", Syntax(("SLOW",), hangs))
    p = make_pipeline(database_url, Registry([default_registry()["tech_inspection"], slow]))
    monkeypatch.setattr(pipeline, "MESSAGE_BUDGET_S", 0.2)
    ids = [receive(conn, "hello", external_id="a"), receive(conn, "SLOW x", external_id="b")]
    with pytest.raises(pipeline.MessageOverran):
        pipeline.dispatch(p, ids)
    assert reply_texts(conn) == []  # the batch rolled back whole: its messages go on alone
    assert pipeline.dispatch(p, ids[:1]).outbound and reply_texts(conn) == [NOT_FOUND]
