"""Faults of the workers and the database: killed between submit and record, retries longer
than the visibility timeout, a poison message, PostgreSQL stopped under load."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import Gateway, wait_for
from tests.support.load import (
    Posted,
    all_answered,
    ids,
    outcome,
    post,
    retry_refused,
    signal_worker,
)
from tests.support.personas import load_personas
from tests.support.servers import Server
from workers import db
from workers.local import embedded
from workers.local.embedded import free_port
from workers.local.gateway import processes

pytestmark = [pytest.mark.e2e, pytest.mark.fault]


class Smsbox(ThreadingHTTPServer):
    """A stand-in for Kannel's smsbox: records each submit, may answer slowly or refuse."""

    def __init__(self, delay_s: float = 0.0, refuse_first: int = 0) -> None:
        super().__init__(("127.0.0.1", free_port()), _SmsboxHandler)
        self.delay_s, self.refuse_first = delay_s, refuse_first
        self.accepted: list[str] = []          # recipients, one per accepted submit
        self.tries: Counter[str] = Counter()   # submits per recipient, refused ones included
        self.in_hand = threading.Event()       # a submit recorded but not yet answered
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"kannel+http://gw:pw@127.0.0.1:{self.server_address[1]}/cgi-bin/sendsms"


class _SmsboxHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        box: Smsbox = self.server
        to = parse_qs(urlsplit(self.path).query)["to"][0]
        with box.lock:
            box.tries[to] += 1
            refuse = box.tries[to] <= box.refuse_first
            if not refuse:
                box.accepted.append(to)  # the SMSC has it from here on
        if not refuse and box.delay_s:
            box.in_hand.set()
            time.sleep(box.delay_s)
        self.send_response(503 if refuse else 202)
        self.end_headers()
        self.wfile.write(b"busy" if refuse else b"0: Accepted for delivery")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def smsbox_factory() -> Iterator:
    boxes: list[Smsbox] = []

    def make(**options: float) -> Smsbox:
        box = Smsbox(**options)
        threading.Thread(target=box.serve_forever, daemon=True).start()
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.shutdown()


def kill_worker(gw: Gateway, name: str) -> None:
    """kill -9 a worker and its pool processes, as a machine that loses power would."""
    signal_worker(gw, name, signal.SIGKILL)
    gw.processes[name].wait()


def restart_worker(gw: Gateway, name: str, n: int) -> str:
    new = f"{name}-{n}"
    gw.spawn(new, processes(gw.settings)[name])
    return new


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_outbound_killed_between_submit_and_record_loses_nothing_flags_duplicates(
        redis_server_own, gateway_on, smsbox_factory, conn):
    box = smsbox_factory(delay_s=1.5)
    # One sending process, its threads (twice GOVSMS_CONCURRENCY) each with a window of
    # one: a crash catches at most that many submits in the SMSC's hands, so at most that
    # many duplicates a crash, each flagged.
    in_flight = 2 * 1 * 1
    gw = gateway_on(redis_server_own.spec.url, transport=f"{box.url}?window=1", beat=True,
                    GOVSMS_VISIBILITY_TIMEOUT="6", GOVSMS_RECONCILE_EVERY_S="2",
                    GOVSMS_RECONCILE_AFTER_S="10", GOVSMS_CONCURRENCY="1")
    messages = ids("crash", 8)
    post(gw, messages, Posted())
    name, crashes = "worker-outbound", 0
    for n in range(3):
        box.in_hand.clear()
        if not box.in_hand.wait(30):
            break
        kill_worker(gw, name)  # the SMSC has the SMS; our record of it never comes
        crashes += 1
        name = restart_worker(gw, "worker-outbound", n)
    wait_for(lambda: conn.execute("SELECT count(*) FROM outbound WHERE state = 'sent'"
                                  ).fetchone()[0] == len(messages), 120, "every reply sent")
    per_recipient = Counter(box.accepted)
    doubled = {to for to, k in per_recipient.items() if k > 1}
    flagged = {r[0] for r in conn.execute("SELECT recipient FROM outbound WHERE possible_duplicate")}
    print(f"\n[fault] outbound killed between submit and record: crashes={crashes} "
          f"recipients={len(per_recipient)} duplicates={sum(per_recipient.values()) - len(per_recipient)} "
          f"flagged={len(flagged)}")
    assert crashes == 3 and len(per_recipient) == len(messages)           # 0 lost
    assert sum(per_recipient.values()) - len(per_recipient) <= crashes * in_flight
    assert doubled <= flagged                                             # each one flagged


@pytest.mark.slow
def test_retries_longer_than_the_visibility_timeout_send_once(
        redis_server_own, gateway_on, smsbox_factory, conn):
    box = smsbox_factory(refuse_first=4)  # backoff 1, 2, 4, 8 s: past a 3 s visibility timeout
    gw = gateway_on(redis_server_own.spec.url, transport=box.url,
                    GOVSMS_VISIBILITY_TIMEOUT="3")
    messages = ids("vis", 4)
    post(gw, messages, Posted())
    wait_for(lambda: conn.execute("SELECT count(*) FROM outbound WHERE state = 'sent'"
                                  ).fetchone()[0] == len(messages), 90, "every reply sent")
    time.sleep(5)  # any early redelivery has had time to act
    redelivered = sum(gw.log(n).count("Task govsms.deliver[") for n in gw.processes)
    print(f"\n[fault] countdown past the visibility timeout: accepted={len(box.accepted)} "
          f"tries={sum(box.tries.values())} deliver_task_runs={redelivered}")
    assert Counter(box.accepted) == Counter({to: 1 for to in box.accepted})
    assert len(box.accepted) == len(messages)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_poison_message_is_buried_after_three_worker_deaths(
        redis_server_own, gateway_on, conn, database_url):
    load_personas(conn)
    gw = gateway_on(redis_server_own.spec.url, GOVSMS_VISIBILITY_TIMEOUT="6",
                    GOVSMS_STATEMENT_TIMEOUT_MS="120000")
    name, deaths = "worker-svc.tech_inspection", 0
    with psycopg.connect(database_url) as locker:
        # The request hangs on this lock; each time, its worker dies under it.
        locker.execute("LOCK TABLE vehicles.inspections IN ACCESS EXCLUSIVE MODE")
        inbound_id = gw.post(**{"from": "+77010000001", "to": "1414", "text": "8 123ABC01",
                                "id": "poison"}).json()["id"]
        for n in range(3):
            wait_for(lambda n=name: "Task govsms.answer[" in gw.log(n), 60, "the task to start")
            time.sleep(0.5)
            kill_worker(gw, name)
            deaths += 1
            name = restart_worker(gw, "worker-svc.tech_inspection", n)
        [sms] = gw.replies_to(inbound_id, timeout_s=60)
        locker.rollback()
    reason, = conn.execute("SELECT reason FROM dead_letters WHERE inbound_id = %s",
                           (inbound_id,)).fetchone()
    print(f"\n[fault] poison message: worker deaths={deaths}, then buried: {reason}")
    assert sms["text"] == "Usluga vremenno nedostupna. Povtorite zapros pozzhe."
    assert reason.startswith("poison")
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (1,)


@pytest.fixture
def own_postgres(own_servers: Path) -> Iterator[Server]:
    folder = own_servers / f"pg-{time.monotonic_ns()}"
    folder.mkdir()
    folder.chmod(0o755)
    server = Server(embedded.postgres_spec(folder), folder / "pg.log").start()
    db.migrate(server.spec.url)
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_postgresql_stopped_30_s_nothing_acknowledged_without_a_reply(
        redis_server_own, gateway_on, own_postgres):
    url = own_postgres.spec.url
    gw = gateway_on(redis_server_own.spec.url, database=url, beat=True,
                    GOVSMS_RECONCILE_EVERY_S="2", GOVSMS_RECONCILE_AFTER_S="5")
    messages = ids("pgdown", 40)
    posted = Posted()
    load = threading.Thread(target=post, args=(gw, messages, posted), kwargs={"rate": 4})
    load.start()
    time.sleep(2)
    own_postgres.signal(signal.SIGINT)  # a fast shutdown, as an operator's restart
    own_postgres.process.wait(30)
    time.sleep(30)
    own_postgres.start()
    load.join()
    refused = len(posted.refused)
    retry_refused(gw, posted, messages)
    with psycopg.connect(url, autocommit=True) as conn:
        wait_for(lambda: all_answered(gw, conn, len(messages)), 120, "every message answered")
        result = outcome(gw, conn)
        metrics = httpx.get(f"{gw.settings.ingest_url}/metrics").text
    breaches = next(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                    if s.name == "govsms_sla_breaches_total")
    result.show("postgresql stopped 30 s", refused_while_down=refused, breaches_metric=breaches)
    assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
        40, 40, 40, 0)
    assert refused > 0 and breaches == result.late
