"""One hostile SMS never harms its batch-mates: a real inbound worker, a real batch.

The inbound worker runs `tests.support.hostile_worker`, the gateway's app with a `hostile` service
whose argument parser raises for one text and hangs for another. One dispatch task carries
[normal, raising, hanging, normal]: the batch fails, goes on one task per message, and only the
two hostile messages become dead letters, each once; the two citizens get one reply each.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.support.gateway import Gateway, gateway_settings, wait_for
from tests.support.keys import SECRET
from tests.support.servers import claimed_redis_db
from workers import messages
from workers.app import create_app
from workers.local.gateway import processes
from workers.queues import INBOUND
from workers.tasks import DISPATCH

pytestmark = pytest.mark.e2e


@pytest.fixture
def gateway(database_url: str, redis_server: str, tmp_path, conn) -> Iterator[Gateway]:
    with claimed_redis_db(redis_server) as redis_url:
        settings = gateway_settings(database_url, redis_url, tmp_path, SECRET)
        gw = Gateway(settings, tmp_path)
        argv = processes(settings)
        inbound = argv["worker-inbound"]
        inbound[inbound.index("workers.celery_app")] = "tests.support.hostile_worker"
        try:
            gw.spawn("worker-inbound", inbound)
            gw.spawn("worker-outbound", argv["worker-outbound"])
            for name in gw.processes:
                wait_for(lambda n=name: "ready." in gw.log(n), 60, name)
            yield gw
        finally:
            gw.stop()


def _receive(conn, text: str, n: int) -> int:
    return messages.record_inbound(conn, source="test", external_id=f"batch-{n}",
                                   sender=f"+7701555{n:04d}", shortcode="1414", text=text).id


def test_a_hostile_message_fails_only_itself(gateway, conn):
    texts = ["hello", "HOSTILE raise", "HOSTILE sleep", "hello"]
    ids = [_receive(conn, text, n) for n, text in enumerate(texts)]
    normal, hostile = [ids[0], ids[3]], [ids[1], ids[2]]
    app = create_app(gateway.settings)
    app.send_task(DISPATCH, args=[ids], queue=INBOUND)

    def dead() -> list[int]:
        return sorted(r[0] for r in conn.execute("SELECT inbound_id FROM dead_letters"))

    wait_for(lambda: dead() == hostile, 60, "the two hostile messages as dead letters")
    wait_for(lambda: {s["inbound_id"] for s in gateway.sent()} >= set(normal), 30,
             "a reply to each normal message")
    wait_for(lambda: not gateway.queue_depths(), 30, "every queue drained")
    time.sleep(1)  # anything still in flight would land now
    replies = Counter(s["inbound_id"] for s in gateway.sent())
    assert replies == {normal[0]: 1, normal[1]: 1}
    assert dead() == hostile  # each once, and neither normal message
    assert "over its budget" in gateway.log("worker-inbound")  # the hang was cut by its budget
