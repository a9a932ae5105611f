"""A killed outbound worker loses no reply: what it held comes back, at most once more, flagged.

The SMSC side here is a stand-in smsbox that answers slowly (0.2 s a message), so
the worker is killed with SMS in hand; Kannel itself cannot be told to be slow. Beat runs,
as in every deployment: a deliver task Redis had handed to the worker's pending BRPOP
when it died is gone from Redis (kombu's Redis transport keeps only what the worker had
taken into its unacknowledged set), and the reconciler queues its part again.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.gateway import Gateway, gateway_settings, wait_for
from tests.support.keys import SECRET
from tests.support.servers import claimed_redis_db
from workers.local.embedded import free_port
from workers.local.gateway import processes

pytestmark = pytest.mark.e2e


class _SlowSmsbox(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(0.2)
        query = parse_qs(urlsplit(self.path).query)
        self.server.received.append((query["to"][0], query["text"][0]))
        self.send_response(202)
        self.end_headers()
        self.wfile.write(b"0: Accepted for delivery")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def smsbox() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _SlowSmsbox)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def gateway(smsbox, database_url: str, redis_server: str, tmp_path, conn) -> Iterator[Gateway]:
    with claimed_redis_db(redis_server) as redis_url:
        port = smsbox.server_address[1]
        settings = gateway_settings(database_url, redis_url, tmp_path, SECRET).model_copy(
            update={"transport": f"kannel+http://gw:pw@127.0.0.1:{port}/cgi-bin/sendsms",
                    "visibility_timeout": 6, "reconcile_every_s": 2, "reconcile_after_s": 8})
        gw = Gateway(settings, tmp_path, env_extra={
            "GOVSMS_VISIBILITY_TIMEOUT": "6", "GOVSMS_RECONCILE_EVERY_S": "2",
            "GOVSMS_RECONCILE_AFTER_S": "8"})
        try:
            gw.start()
            gw.spawn("beat", processes(settings)["beat"])
            yield gw
        finally:
            gw.stop()


def test_a_killed_outbound_worker_loses_no_reply(gateway, smsbox, conn):
    ids = [gateway.post(**{"from": f"+7701444{n:04d}", "to": "1414", "text": "hello",
                           "id": f"loss-{n}"}).json()["id"] for n in range(30)]
    wait_for(lambda: len(smsbox.received) >= 5, 30, "the first sends")
    gateway.processes["worker-outbound"].send_signal(signal.SIGKILL)
    gateway.processes["worker-outbound"].wait()
    sent_before = len(smsbox.received)
    gateway.spawn("worker-outbound-2", processes(gateway.settings)["worker-outbound"])
    wait_for(lambda: conn.execute("SELECT count(*) FROM outbound WHERE state = 'sent'"
                                  ).fetchone()[0] == len(ids), 90, "every reply sent")
    time.sleep(1)
    per_recipient = Counter(to for to, _ in smsbox.received)
    assert set(per_recipient) == {f"+7701444{n:04d}" for n in range(30)}
    doubled = sorted(to for to, n in per_recipient.items() if n > 1)
    flagged = sorted(r[0] for r in conn.execute(
        "SELECT recipient FROM outbound WHERE possible_duplicate"))
    assert max(per_recipient.values()) <= 2
    # One crash: the SMS of the tasks it had in flight, one a sending thread.
    assert set(doubled) <= set(flagged) and len(flagged) <= 2 * gateway.settings.concurrency
    assert sent_before < len(ids)  # the worker really died with work in hand
