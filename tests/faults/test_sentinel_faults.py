"""Redis Sentinel: the whole gateway (ingest, workers, beat) on a master, a replica and three
sentinels; the master killed with kill -9 under a few hundred messages a second. A failover
may cost seconds, never a message: every accepted message is answered exactly once, no
process is restarted, and the old master, started again, rejoins as a replica."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from tests.support.gateway import wait_for
from tests.support.load import Posted, all_answered, ids, outcome, post, retry_refused
from tests.support.sentinels import sentinel_group

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

RATE = 300  # messages a second
SECONDS = 20


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_master_killed_under_load_costs_seconds_never_a_message(gateway_on, conn,
                                                                     tmp_path):
    with sentinel_group(tmp_path / "redis-group") as group:
        gw = gateway_on(group.url(), beat=True, GOVSMS_RECONCILE_EVERY_S="2",
                        GOVSMS_RECONCILE_AFTER_S="5")
        messages = ids("sentinel", RATE * SECONDS)
        posted = Posted()
        load = threading.Thread(target=post, args=(gw, messages, posted), kwargs={"rate": RATE})
        load.start()
        time.sleep(SECONDS / 2)
        old = group.master()
        old.kill()
        killed_at = dt.datetime.now(dt.UTC)
        load.join()
        refused_under_load = len(posted.refused)
        retry_refused(gw, posted, messages)
        wait_for(lambda: all_answered(gw, conn, len(messages)), 180, "every message answered")
        # The first message received after the kill that got its reply: the gateway is back.
        first = conn.execute(
            "SELECT min(o.sent_at) FROM inbound i JOIN outbound o ON o.inbound_id = i.id "
            "WHERE i.received_at > %s AND o.state = 'sent'", (killed_at,)).fetchone()[0]
        new = group.master()
        result = outcome(gw, conn)
        result.show("redis master killed under load (sentinel)",
                     rate_per_s=RATE, seconds=SECONDS,
                     kill_to_first_reply_s=round((first - killed_at).total_seconds(), 2),
                     refused_under_load=refused_under_load)
        assert new is not old
        assert set(posted.accepted) == set(messages)  # the refused were retried and taken
        assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
            len(messages), len(messages), len(messages), 0)
        # Every process carried on: none exited (the harness restarts none), beat started once.
        assert [name for name, p in gw.processes.items() if p.poll() is not None] == []
        assert (tmp_path / "beat.log").read_text().count("beat: Starting") == 1
        # The old master, started again, is made a replica of the new one by the sentinels.
        old.start()
        wait_for(lambda: old.role() == "slave", 60, "the old master to rejoin as a replica")
        assert old.client().info("replication")["master_port"] == new.port
