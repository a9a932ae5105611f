"""Faults of the broker: Redis stalled, killed, emptied; a countdown longer than its visibility."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis

from tests.support.gateway import wait_for
from tests.support.load import (
    Posted,
    all_answered,
    answered,
    ids,
    outcome,
    post,
    retry_refused,
    signal_worker,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_redis_stalled_20_s_ingest_refuses_and_nothing_is_lost_or_doubled(
        redis_server_own, gateway_on, conn):
    gw = gateway_on(redis_server_own.spec.url, beat=True, GOVSMS_RECONCILE_EVERY_S="2",
                    GOVSMS_RECONCILE_AFTER_S="5")
    messages = ids("stall", 20)
    posted = Posted()
    post(gw, messages[:5], posted)
    redis_server_own.signal(signal.SIGSTOP)
    try:
        during = threading.Thread(target=post, args=(gw, messages[5:], posted))
        during.start()
        time.sleep(20)
    finally:
        redis_server_own.signal(signal.SIGCONT)
    during.join()
    refused_during_stall = len(posted.refused)
    retry_refused(gw, posted, messages)
    wait_for(lambda: all_answered(gw, conn, len(messages)), 90, "every message answered")
    result = outcome(gw, conn)
    result.show("redis stalled 20 s", refused_during_stall=refused_during_stall)
    # Nothing answered 2xx was lost; everything was answered exactly once.
    recorded = {r[0] for r in conn.execute("SELECT external_id FROM inbound")}
    assert set(posted.accepted) <= recorded and set(messages) == recorded
    assert refused_during_stall > 0
    assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
        20, 20, 20, 0)


@pytest.mark.slow
def test_redis_killed_and_restarted_loses_nothing_and_workers_resume(
        redis_server_own, gateway_on, conn):
    gw = gateway_on(redis_server_own.spec.url, beat=True, GOVSMS_RECONCILE_EVERY_S="2",
                    GOVSMS_RECONCILE_AFTER_S="5")
    messages = ids("kill", 150)
    posted = Posted()
    load = threading.Thread(target=post, args=(gw, messages, posted), kwargs={"rate": 50})
    load.start()
    time.sleep(1.0)
    redis_server_own.kill()
    time.sleep(2.0)
    redis_server_own.start()
    restarted = time.monotonic()
    # Resumed: a message taken after the restart is answered by the same worker processes.
    probe, probed = ids("kill-probe", 1), Posted()
    wait_for(lambda: post(gw, probe, probed) or probed.accepted, 30, "the ingest to take one")
    wait_for(lambda: answered(conn, probe[0]), 30, "the workers to resume")
    resumed_s = time.monotonic() - restarted
    assert not [name for name, p in gw.processes.items() if p.poll() is not None]
    load.join()
    retry_refused(gw, posted, messages)
    wait_for(lambda: all_answered(gw, conn, len(messages) + 1), 90, "every message answered")
    result = outcome(gw, conn)
    result.show("redis killed -9 and restarted", resumed_after_s=round(resumed_s, 1))
    assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
        151, 151, 151, 0)
    assert resumed_s < 30


@pytest.mark.slow
def test_redis_emptied_mid_load_the_reconciler_answers_everything(
        redis_server_own, gateway_on, conn):
    gw = gateway_on(redis_server_own.spec.url, beat=True, GOVSMS_RECONCILE_EVERY_S="2",
                    GOVSMS_RECONCILE_AFTER_S="5")
    messages = ids("flush", 120)
    posted = Posted()
    # The inbound worker holds off, so the queue holds tasks when Redis loses them.
    signal_worker(gw, "worker-inbound", signal.SIGSTOP)
    try:
        post(gw, messages, posted, rate=60)
        queued = redis.Redis.from_url(redis_server_own.spec.url).llen("inbound")
        redis.Redis.from_url(redis_server_own.spec.url).flushall()
    finally:
        signal_worker(gw, "worker-inbound", signal.SIGCONT)
    retry_refused(gw, posted, messages)
    wait_for(lambda: all_answered(gw, conn, len(messages)), 90, "every message answered")
    result = outcome(gw, conn)
    reconciled = sum(gw.log(name).count("reconciler re-enqueues") for name in gw.processes)
    result.show("redis emptied mid-load", tasks_lost=queued,
                reconciler_runs_that_found_work=reconciled)
    assert queued > 0 and reconciled > 0
    assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
        120, 120, 120, 0)
