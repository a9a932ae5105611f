"""The Celery app's wiring: each task lands on its own queue of the real Redis, and only there."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import redis

from workers import messages
from workers.app import create_app
from workers.queues import OUTBOUND, all_queues, service_queue
from workers.settings import Settings
from workers.tasks import ANSWER, DELIVER, DISPATCH, RECONCILE, GovsmsTask


@pytest.fixture
def broker(settings: Settings) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.set("govsms:test-claim", "kept")  # the session's claim on this db
    return client


def declared_app(settings: Settings):
    """The app, with every queue declared as the workers do."""
    app = create_app(settings)
    with app.connection_for_write() as conn:
        for q in app.amqp.queues.values():
            q.bind(conn.default_channel).declare()
    return app


def depths(client: redis.Redis, settings: Settings) -> dict[str, int]:
    return {q: client.llen(q) for q in all_queues(settings) if client.llen(q)}


@pytest.mark.parametrize(("task", "args", "queue"), [
    (DISPATCH, [[1]], "inbound"),
    (RECONCILE, [], "inbound"),
    (ANSWER, ["housing_queue", 0.0, [1]], service_queue("housing_queue")),
    (DELIVER, [[1]], OUTBOUND),
])
def test_each_task_lands_on_its_queue_only(settings, broker, task, args, queue):
    app = declared_app(settings)
    explicit = {"queue": queue} if task == ANSWER else {}
    app.send_task(task, args=args, **explicit)
    assert depths(broker, settings) == {queue: 1}
    message = json.loads(broker.lpop(queue))
    assert message["headers"]["task"] == task


def test_only_json_and_no_results(settings):
    conf = create_app(settings).conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_ignore_result and conf.result_backend is None
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert conf.task_time_limit < visibility < settings.sla_seconds


def _queued_args(client: redis.Redis, queue: str) -> list[list]:
    import base64

    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
            for raw in reversed(client.lrange(queue, 0, -1))]


@pytest.mark.parametrize(("task", "head", "queue"), [
    (DISPATCH, [], "inbound"),
    (ANSWER, ["housing_queue", 0.0], service_queue("housing_queue")),
    (DELIVER, [], OUTBOUND),
])
def test_a_batch_back_after_its_worker_died_goes_on_one_task_per_message(
        settings, broker, conn, task, head, queue, monkeypatch):
    app = declared_app(settings)
    # Redis hands back what a dead worker held, marked redelivered (kombu's restore).
    monkeypatch.setattr(GovsmsTask, "_redelivered", lambda self: True)
    app.tasks[task].apply(args=[*head, [11, 12, 13]], task_id="batch-1",
                          routing_key=queue)
    assert _queued_args(broker, queue) == [[*head, [n]] for n in (11, 12, 13)]
    assert broker.get("govsms:starts:batch-1:0") == b"1"  # one redelivery counted
    # A message alone is run again: only past MAX_STARTS is it buried.
    app.tasks[task].apply(args=[*head, [11]], task_id="single-1")
    assert len(_queued_args(broker, queue)) == 3


@pytest.mark.parametrize(("task", "head"), [(DISPATCH, []), (ANSWER, ["housing_queue", 0.0])])
def test_a_first_start_counts_nothing_in_redis(settings, broker, conn, task, head):
    create_app(settings).tasks[task].apply(args=[*head, [11, 12]], task_id="first-1")
    assert broker.keys("govsms:starts:*") == []


@pytest.mark.parametrize(("task", "head", "queue"), [
    (DISPATCH, [], "inbound"),
    (ANSWER, ["housing_queue", 0.0], service_queue("housing_queue")),
    (DELIVER, [], OUTBOUND),
])
def test_a_failed_batch_goes_on_one_task_per_message_and_touches_none(
        settings, broker, conn, monkeypatch, task, head, queue):
    from workers import pipeline

    def fails(*args, **kwargs):
        raise RuntimeError("one message's bug")
    for step in ("dispatch", "answer", "deliver"):
        monkeypatch.setattr(pipeline, step, fails)
    app = declared_app(settings)
    app.tasks[task].apply(args=[*head, [11, 12, 13]], task_id="batch-2", routing_key=queue)
    assert _queued_args(broker, queue) == [[*head, [n]] for n in (11, 12, 13)]
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def test_a_failed_single_message_is_a_dead_letter_and_a_store_down_splits_nothing(
        settings, broker, conn, monkeypatch):
    from services.errors import StoreUnavailable
    from tests.support.pipeline import receive
    from workers import pipeline

    ids = [receive(conn, "hello", external_id=f"single-{n}") for n in range(3)]
    monkeypatch.setattr(pipeline, "dispatch", lambda *a: (_ for _ in ()).throw(RuntimeError()))
    app = declared_app(settings)
    app.tasks[DISPATCH].apply(args=[[ids[0]]], task_id="single-2", routing_key="inbound")
    assert _queued_args(broker, "inbound") == []
    letters = conn.execute("SELECT inbound_id FROM dead_letters ORDER BY id").fetchall()
    assert letters == [(ids[0],)]
    # A store that stays down fails every message alike: its batch is not split.
    down = StoreUnavailable("OperationalError")
    monkeypatch.setattr(pipeline, "dispatch", lambda *a: (_ for _ in ()).throw(down))
    app.tasks[DISPATCH].apply(args=[ids[1:]], task_id="batch-3", retries=5,
                              routing_key="inbound")
    assert _queued_args(broker, "inbound") == []
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (3,)


def test_the_reconciler_sends_each_stale_part_back_to_its_own_queue(settings, broker, conn):
    from workers.pipeline import to_parts
    from workers.queues import BULK

    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    def part(key: str, **kind: str) -> int:
        return messages.add_notice(conn, key=key, sender="1414", recipient="+77015550000",
                                   parts=to_parts("hi"), deadline=deadline, **kind)[0][0]
    bulk = part("api:portal:1", client="portal")
    code = part("otp:1", service="otp", outcome="code", client="portal")
    reminder = part("rotate:1", service="account_registration", outcome="reminder")
    conn.execute("UPDATE outbound SET created_at = now() - interval '10 minutes'")
    app = declared_app(settings)
    app.tasks[RECONCILE].apply()
    assert _queued_args(broker, OUTBOUND) == [[[code, reminder]]]
    assert _queued_args(broker, BULK) == [[[bulk]]]
