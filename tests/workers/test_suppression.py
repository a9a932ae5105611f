"""Which MOs get no reply: senders that are no person, floods, repeats; on the real
PostgreSQL and Redis, through the dispatch step (without Celery)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.pipeline import PHONE, make_pipeline, receive
from workers import messages, pipeline
from workers.messages import metrics
from workers.settings import DEFAULT_SHORTCODES
from workers.suppression import Guard, sender_problem

OWN = frozenset(DEFAULT_SHORTCODES)
NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."
TOO_MANY_1414 = ("Slishkom mnogo zaprosov s Vashego nomera. Otvety priostanovleny, povtorite "
                 "pozzhe.")


@pytest.mark.parametrize(("sender", "problem"), [
    ("+77011234567", None),
    ("+84905123456", None),
    ("BEELINE", "sender_alphanumeric"),
    ("Kcell Info", "sender_alphanumeric"),
    ("+7701ABC4567", "sender_alphanumeric"),
    ("1414", "sender_own_code"),
    ("+8188", "sender_own_code"),
    ("7575", "sender_short_code"),
    ("100", "sender_short_code"),
    ("", "sender_malformed"),
    ("   ", "sender_malformed"),
    ("+", "sender_malformed"),
    ("0000000", "sender_malformed"),     # kept raw: the ingest could not read it as a number
    ("+0123456789", "sender_malformed"),
    ("+7701123456789012", "sender_malformed"),  # longer than E.164 allows
    ("+7 701 123 45 67", "sender_malformed"),  # the ingest stores E.164, never this
])
def test_only_a_subscriber_number_is_a_person(sender, problem):
    assert sender_problem(sender, OWN) == problem


def guarded(database_url: str, client: redis.Redis | None, **limits: int) -> pipeline.Pipeline:
    built = make_pipeline(database_url)
    return pipeline.Pipeline(**{**{f: getattr(built, f) for f in built.__slots__},
                                "guard": Guard(OWN, client, b"k" * 32, **limits)})


@pytest.fixture
def p(conn: psycopg.Connection, database_url: str, redis_client: redis.Redis
      ) -> Iterator[pipeline.Pipeline]:
    built = guarded(database_url, redis_client, per_phone=3, window_s=600, repeat_s=60)
    yield built
    built.pool.close()


def states(conn: psycopg.Connection) -> list[tuple[int, str, str | None]]:
    return conn.execute("SELECT i.id, i.state, s.reason FROM inbound i LEFT JOIN suppressions s "
                        "ON s.inbound_id = i.id ORDER BY i.id").fetchall()


def reply_texts(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT recipient, text FROM outbound ORDER BY id").fetchall()


def test_a_sender_that_is_no_person_is_recorded_and_never_answered(conn, p):
    ids = [receive(conn, "hello", sender=sender, external_id=sender)
           for sender in ("BEELINE", "1414", "7575", "+")]
    routed = pipeline.dispatch(p, ids)
    assert routed.outbound == [] and routed.services == {}
    assert reply_texts(conn) == []
    assert [s[1:] for s in states(conn)] == [
        ("suppressed", "sender_alphanumeric"), ("suppressed", "sender_own_code"),
        ("suppressed", "sender_short_code"), ("suppressed", "sender_malformed")]
    # Not the reconciler's: nothing is waiting for an answer.
    assert messages.stale(conn, older_than_s=-1, limit=10).inbound == []
    assert dict(metrics.suppressed(conn)) == {
        "sender_alphanumeric": 1, "sender_own_code": 1, "sender_short_code": 1,
        "sender_malformed": 1}


def test_three_different_queries_in_a_minute_get_three_replies(conn, p):
    ids = [receive(conn, text, external_id=str(n)) for n, text in enumerate(("4", "5", "hi"))]
    routed = pipeline.dispatch(p, ids)
    assert routed.services == {"housing_queue": [ids[0]], "kindergarten_queue": [ids[1]]}
    assert len(routed.outbound) == 1
    assert [s[2] for s in states(conn)] == [None, None, None]


def test_the_same_text_from_the_same_phone_is_answered_once(conn, p):
    first = receive(conn, "hello", external_id="1")
    pipeline.dispatch(p, [first])
    again = [receive(conn, " HELLO ", external_id="2"), receive(conn, "hello", external_id="3")]
    other_phone = receive(conn, "hello", sender="+77019998877", external_id="4")
    pipeline.dispatch(p, [*again, other_phone])
    assert reply_texts(conn) == [(PHONE, NOT_FOUND), ("+77019998877", NOT_FOUND)]
    assert [s[2] for s in states(conn)] == [None, "repeat", "repeat", None]


def test_past_the_flood_limit_one_reply_says_so_then_silence(conn, p):
    ids = [receive(conn, f"hello {n}", external_id=str(n)) for n in range(6)]
    pipeline.dispatch(p, ids[:2])
    pipeline.dispatch(p, ids[2:])
    assert [text for _, text in reply_texts(conn)] == [NOT_FOUND] * 3 + [TOO_MANY_1414]
    assert [s[1:] for s in states(conn)] == [("answered", None)] * 4 + [
        ("suppressed", "flood")] * 2
    # Another phone is not touched by this one's flood.
    pipeline.dispatch(p, [receive(conn, "hello 0", sender="+77019998877", external_id="x")])
    assert reply_texts(conn)[-1] == ("+77019998877", NOT_FOUND)


def test_a_batch_dispatched_again_gets_the_same_verdicts(conn, p):
    ids = [receive(conn, text, external_id=str(n))
           for n, text in enumerate(("a", "a", "b", "c", "d", "e"))]
    pipeline.dispatch(p, ids)
    before = states(conn), reply_texts(conn)
    conn.execute("UPDATE inbound SET state = 'received'")  # as if nothing had been recorded
    conn.execute("TRUNCATE suppressions")
    conn.execute("DELETE FROM outbound")
    pipeline.dispatch(p, ids)
    assert (states(conn), reply_texts(conn)) == before
    assert [s[2] for s in before[0]] == [None, "repeat", None, None, None, "flood"]


def test_the_limit_reply_is_in_the_short_codes_language(conn, p):
    ids = [receive(conn, f"TK, Nguyen Van {n}", sender="+84905123456", external_id=str(n),
                   shortcode="8188") for n in range(4)]
    routed = pipeline.dispatch(p, ids)
    assert routed.services == {"account_registration": ids[:3]}
    [(to, text)] = reply_texts(conn)
    assert to == "+84905123456" and text.startswith("Qua nhieu tin nhan")
    assert conn.execute("SELECT service, outcome FROM outbound").fetchone() == (
        "account_registration", "too_many")


def test_the_windows_are_counted_from_the_time_of_receipt(conn, p):
    old = receive(conn, "hello 1", external_id="1")
    conn.execute("UPDATE inbound SET received_at = now() - interval '20 minutes'")
    ids = [old, *(receive(conn, f"hello {n}", external_id=str(n)) for n in range(2, 6))]
    pipeline.dispatch(p, ids)
    assert [s[2] for s in states(conn)] == [None, None, None, None, None]  # 1 + 3, then told
    assert reply_texts(conn)[-1][1] == TOO_MANY_1414


def test_no_number_in_redis(conn, p, redis_client):
    pipeline.dispatch(p, [receive(conn, "hello", external_id="1")])
    keys = redis_client.keys("govsms:flood:*") + redis_client.keys("govsms:repeat:*")
    assert keys and not any(b"7011234567" in key or b"hello" in key for key in keys)
    assert not any(b"7011234567" in redis_client.dump(key) for key in keys)


def test_redis_down_answers_everyone(conn, database_url):
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    built = guarded(database_url, down, per_phone=1, repeat_s=60)
    try:
        ids = [receive(conn, "hello", external_id=str(n)) for n in range(3)]
        routed = pipeline.dispatch(built, ids)
    finally:
        built.pool.close()
    assert len(routed.outbound) == 3


def test_limits_at_zero_count_nothing(conn, database_url, redis_client):
    built = guarded(database_url, redis_client, per_phone=0, repeat_s=0)
    try:
        ids = [receive(conn, "hello", external_id=str(n)) for n in range(12)]
        assert len(pipeline.dispatch(built, ids).outbound) == 12
    finally:
        built.pool.close()
    assert redis_client.keys("govsms:flood:*") + redis_client.keys("govsms:repeat:*") == []


def test_a_suppressed_message_stays_suppressed(conn, p):
    inbound_id = receive(conn, "hello", sender="BEELINE")
    pipeline.dispatch(p, [inbound_id])
    pipeline.dispatch(p, [inbound_id])
    assert conn.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 1
    assert reply_texts(conn) == []


def test_govsms_send_explains_every_reason():
    from workers.cli.messages import SUPPRESSED
    from workers.suppression import REASONS

    assert set(SUPPRESSED) == set(REASONS)
