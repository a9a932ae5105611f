"""8188 registration, one-time codes and the outbound API through the real processes,
and a scan of everything the run left behind for passwords, codes and phone numbers."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.support.gateway import PORTAL_SECRET, Gateway, gateway_settings, wait_for
from tests.support.keys import SECRET
from tests.support.servers import claimed_redis_db
from workers.tasks import RECONCILE

pytestmark = pytest.mark.e2e

CITIZEN, PHONE = "+84905123456", "+77011234567"


@pytest.fixture
def gateway(database_url: str, redis_server: str, tmp_path, conn) -> Iterator[tuple[Gateway, str]]:
    with claimed_redis_db(redis_server) as redis_url:
        gw = Gateway(gateway_settings(database_url, redis_url, tmp_path, SECRET), tmp_path)
        try:
            yield gw.start(), redis_url
        finally:
            gw.stop()


class BrokerTap:
    """Every command the Redis server receives for one db, as Redis MONITOR shows it."""

    def __init__(self, url: str) -> None:
        self.lines: list[str] = []
        self._db = int(url.rsplit("/", 1)[1])
        self._client = redis.Redis.from_url(url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.2)

    def _run(self) -> None:
        with self._client.monitor() as monitor:
            for event in monitor.listen():
                if event.get("db") == self._db:
                    self.lines.append(event["command"])
                if self._stop.is_set():
                    return

    def stop(self) -> str:
        self._stop.set()
        self._client.ping()  # one more command, so the listener wakes up and sees the stop
        self._thread.join(5)
        return "\n".join(self.lines)


def test_secrets_and_numbers_leave_no_trace(gateway, conn, tmp_path):
    gw, redis_url = gateway
    tap = BrokerTap(redis_url)
    registration = gw.post(**{"from": "0905123456", "to": "8188",
                              "text": "TK, Nguyễn Văn An ; 123456789 ; 01/02/1990", "id": "r-1"})
    [sms] = gw.replies_to(registration.json()["id"])
    username, password = re.match(r"TK: (\S+), MK: (\S+) la tai khoan", sms["text"]).groups()
    assert sms["to"] == CITIZEN and sms["from"] == "8188"

    portal = {"Authorization": f"Bearer {PORTAL_SECRET}"}
    base = gw.settings.ingest_url
    sent = httpx.post(f"{base}/v1/otp", headers=portal,
                      json={"phone": PHONE, "purpose": "link_number", "iin": "880102300452"})
    assert sent.status_code == 202
    code_sms = wait_for(lambda: [s for s in gw.sent() if s["to"] == PHONE], what="the code")
    code = re.search(r"Kod: (\d{6})", code_sms[0]["text"])[1]
    verified = httpx.post(f"{base}/v1/otp/verify", headers=portal,
                          json={"phone": PHONE, "code": code})
    assert verified.json() == {"ok": True, "purpose": "link_number"}
    assert conn.execute("SELECT iin FROM mbg.subscribers WHERE phone = %s",
                        (PHONE,)).fetchone() == ("880102300452",)

    notice = httpx.post(f"{base}/v1/messages/outbound", headers={**portal, "Idempotency-Key": "n1"},
                        json={"to": "+77019998877", "text": "Vash dokument gotov", "sender": "EGOV"})
    assert notice.status_code == 202
    wait_for(lambda: any(s["to"] == "+77019998877" for s in gw.sent()), what="the notice")
    changed = httpx.post(f"{base}/v1/accounts/{username}/password-changed", headers=portal)
    assert changed.json() == {"ok": True}
    broker = tap.stop()

    logs = "\n".join(gw.log(name) for name in gw.processes)
    tables = "\n".join(str(row) for query in (
        "SELECT * FROM outbound", "SELECT * FROM otp.codes", "SELECT * FROM accounts.citizens",
        "SELECT * FROM dead_letters") for row in conn.execute(query))
    for secret in (password, code):
        assert secret not in logs, "a secret in the logs"
        assert secret not in broker, "a secret in the broker's traffic"
        assert secret not in tables, "a secret in the database"
    for number in (CITIZEN, "0905123456", PHONE, "+77019998877", "880102300452"):
        assert number not in logs, f"{number} unmasked in the logs"
        assert number not in broker, f"{number} in a broker payload"
    assert "MK:" not in broker and "Kod:" not in broker
    assert len(broker) > 1000  # the tap did see the traffic


def test_two_beats_send_each_periodic_task_once(database_url, redis_server, tmp_path):
    with claimed_redis_db(redis_server) as redis_url:
        env_settings = gateway_settings(database_url, redis_url, tmp_path, SECRET)
        gw = Gateway(env_settings, tmp_path, env_extra={"GOVSMS_RECONCILE_EVERY_S": "1"})
        beat = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
                "--loglevel", "INFO"]
        first = gw.spawn("beat-1", beat)
        second = gw.spawn("beat-2", beat)
        try:
            time.sleep(8)
        finally:
            gw.stop()
        queued = redis.Redis.from_url(redis_url).lrange("inbound", 0, -1)
    reconciles = [m for m in queued if RECONCILE.encode() in m]
    sending = [name for name in ("beat-1", "beat-2") if "Sending due task" in gw.log(name)]
    assert first.returncode is not None and second.returncode is not None
    assert len(sending) == 1, "both beats sent periodic tasks"
    assert 3 <= len(reconciles) <= 9, len(reconciles)
