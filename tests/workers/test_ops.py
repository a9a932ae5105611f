"""Operations: health, metrics, status, dead letters, Flower behind a password, two worker hosts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bench import dashboard
from tests.support.gateway import Gateway, gateway_settings, running_gateway, wait_for
from tests.support.keys import SECRET
from tests.support.servers import claimed_redis_db
from workers import messages
from workers.cli import main
from workers.ingest.http import create_app
from workers.local import embedded
from workers.local.embedded import free_port
from workers.local.gateway import processes

pytestmark = pytest.mark.e2e
NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_server: str, tmp_path_factory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("ops")
    with claimed_redis_db(redis_server) as redis_url, running_gateway(
            gateway_settings(database_url, redis_url, folder, SECRET), folder) as gw:
        yield gw


@pytest.fixture
def gw(gateway: Gateway, conn) -> Gateway:
    gateway.settings.outbox.write_text("")
    return gateway


def hello(gw: Gateway, n: int = 1, prefix: str = "ops") -> list[int]:
    ids = [gw.post(**{"from": f"+7701555{i:04d}", "to": "1414", "text": "hello",
                      "id": f"{prefix}-{i}-{uuid.uuid4().hex[:6]}"}).json()["id"] for i in range(n)]
    wait_for(lambda: {s["inbound_id"] for s in gw.sent()} >= set(ids), 30, "the replies")
    return ids


def cli(gw: Gateway, *args: str, monkeypatch) -> str:
    for key, value in gw.env.items():
        if key.startswith("GOVSMS_"):
            monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_health_and_readiness(gw):
    base = gw.settings.ingest_url
    assert httpx.get(f"{base}/healthz").json() == {"status": "alive"}
    assert httpx.get(f"{base}/readyz").json() == {
        "ready": True, "redis": "ok", "postgresql": "ok", "migrations": "ok"}


def test_not_ready_without_redis_or_with_migrations_pending(settings, empty_database, tmp_path):
    spec = embedded.redis_spec(tmp_path)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL)
    try:
        embedded.wait_ready(spec, lambda: server.poll() is None)
        own = settings.model_copy(update={"redis_url": spec.url,
                                          "database_url": empty_database})
        with TestClient(create_app(own)) as client:
            pending = client.get("/readyz")
            assert pending.status_code == 503
            assert pending.json()["migrations"].startswith("pending: 0001_message_store")
            server.kill()
            server.wait()
            assert client.get("/readyz").json()["redis"] != "ok"
    finally:
        server.kill()


def test_metrics_expose_every_series_after_a_few_messages(gw, conn):
    hello(gw, 3)
    conn.execute("INSERT INTO dead_letters (task, reason) VALUES ('answer', 'test')")
    text = httpx.get(f"{gw.settings.ingest_url}/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("govsms_inbound_total", (("service", "none"), ("shortcode", "1414")))] == 3
    assert samples[("govsms_replies_total", (("outcome", "service_not_found"),
                                             ("service", "none"), ("state", "sent")))] == 3
    assert samples[("govsms_reply_latency_seconds_count", ())] == 3
    assert samples[("govsms_reply_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("govsms_sla_breaches_total", ())] == 0
    assert samples[("govsms_transport_errors_total", ())] == 0
    assert samples[("govsms_dead_letters_total", (("task", "answer"),))] == 1
    assert samples[("govsms_dead_letters_open", ())] == 1
    assert samples[("govsms_queue_depth", (("queue", "inbound"),))] == 0
    assert samples[("govsms_retries_total", (("kind", "send"),))] == 0


def test_metric_counters_do_not_count_messages_in_flight(gw, conn):
    """A counter that fell back when a message moved on would read as a reset: a false spike."""
    hello(gw, 2)
    wait_for(lambda: not conn.execute("SELECT 1 FROM outbound WHERE state IN ('queued', "
                                      "'sending')").fetchone(), 10, "the replies marked sent")
    before = httpx.get(f"{gw.settings.ingest_url}/metrics").text
    row = conn.execute("INSERT INTO inbound (source, external_id, sender, shortcode, text) "
                       "VALUES ('test', %s, '+77015550000', '1414', 'hello') RETURNING id",
                       (uuid.uuid4().hex,)).fetchone()
    for state, attempts in (("queued", 0), ("sending", 1)):
        conn.execute("INSERT INTO outbound (inbound_id, part, sender, recipient, text, state, "
                     "attempts, deadline) VALUES (%s, %s, '1414', '+77015550000', 'x', %s, %s, "
                     "now() + interval '1 minute')", (row[0], attempts + 1, state, attempts))
    try:
        assert httpx.get(f"{gw.settings.ingest_url}/metrics").text == before
    finally:
        conn.execute("DELETE FROM outbound WHERE inbound_id = %s", row)
        conn.execute("DELETE FROM inbound WHERE id = %s", row)


def test_status_prints_queues_workers_sla_and_dead_letters(gw, monkeypatch):
    hello(gw, 2)
    out = cli(gw, "status", monkeypatch=monkeypatch)
    assert "inbound" in out and "outbound" in out and "svc.housing_queue" in out
    assert "workers alive: 8" in out  # inbound, four service workers, outbound, bulk, replay
    assert "SLA, last hour: 100.00% of 2 sent within their deadline" in out
    assert "dead letters not replayed: 0" in out


def test_dead_letters_list_show_and_replay(gw, conn, monkeypatch):
    inbound_id, = conn.execute(
        "INSERT INTO inbound (source, external_id, sender, shortcode, text, state) "
        "VALUES ('t', 'dl-1', '+77015550000', '1414', 'hello', 'dead') RETURNING id").fetchone()
    letter = messages.add_dead_letter(conn, task="answer", reason="KeyError in housing_queue",
                                      inbound_id=inbound_id)
    assert "KeyError in housing_queue" in cli(gw, "dead-letters", "list", monkeypatch=monkeypatch)
    shown = cli(gw, "dead-letters", "show", str(letter), monkeypatch=monkeypatch)
    assert "+7701***0000" in shown and "+77015550000" not in shown and "text=hello" in shown
    out = cli(gw, "dead-letters", "replay", str(letter), monkeypatch=monkeypatch)
    assert "1 messages received again" in out
    [sms] = wait_for(lambda: gw.sent(), what="the replayed reply")
    assert (sms["to"], sms["text"]) == ("+77015550000", NOT_FOUND)
    assert "0 dead letters" in cli(gw, "dead-letters", "list", monkeypatch=monkeypatch)
    again = cli(gw, "dead-letters", "replay", str(letter), monkeypatch=monkeypatch)
    assert "0 messages received again" in again  # once per dead letter, however often asked
    time.sleep(1)
    assert len(gw.sent()) == 1


def test_a_failed_sms_replays_as_it_was(gw, conn, monkeypatch):
    [inbound_id] = hello(gw)
    conn.execute("UPDATE outbound SET state = 'failed', error = 'unknown subscriber'")
    outbound_id, = conn.execute("SELECT id FROM outbound").fetchone()
    letter = messages.add_dead_letter(conn, task="deliver", reason="unknown subscriber",
                                      outbound_id=outbound_id, inbound_id=inbound_id)
    gw.settings.outbox.write_text("")
    out = cli(gw, "dead-letters", "replay", "--all", monkeypatch=monkeypatch)
    assert "1 SMS queued again" in out
    wait_for(lambda: gw.sent(), what="the SMS sent again")
    assert conn.execute("SELECT state FROM outbound").fetchone() == ("sent",)
    assert conn.execute("SELECT replayed_at IS NOT NULL FROM dead_letters WHERE id = %s",
                        (letter,)).fetchone() == (True,)


FLOWER_PW = "flower-operator-password-0123456789abcdef"


def test_flower_needs_the_password_and_shows_ids_only(gw, monkeypatch):
    port = free_port()
    env = {**gw.env, "GOVSMS_FLOWER_PORT": str(port), "GOVSMS_FLOWER_PASSWORD": FLOWER_PW}
    flower = subprocess.Popen([sys.executable, "-m", "workers.cli", "flower"], env=env,
                              stdout=(gw.logs / "flower.log").open("ab"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(base, timeout=1).status_code > 0
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "flower")
        assert httpx.get(base).status_code == 401
        assert httpx.get(f"{base}/api/tasks").status_code == 401
        assert httpx.get(base, auth=("operator", "wrong")).status_code == 401
        assert httpx.get(base, auth=("operator", FLOWER_PW)).status_code == 200

        def tasks() -> dict:
            return httpx.get(f"{base}/api/tasks", auth=("operator", FLOWER_PW)).json()

        def shown() -> dict:
            # The workers send task events once Flower has turned them on (every 5 s).
            hello(gw, 2, prefix="flower")
            return len(tasks()) >= 4 and tasks()

        seen = wait_for(shown, 30, "tasks in flower")
        args = " ".join(str(t.get("args")) + str(t.get("kwargs")) for t in seen.values())
        assert "7701555" not in args and "hello" not in args
        assert "govsms.dispatch" in {t.get("name") for t in seen.values()}
    finally:
        flower.terminate()
        flower.wait(10)


@pytest.fixture
def redis_with_password(tmp_path) -> Iterator[tuple[str, str]]:
    """A Redis of this test's own that wants a password (as the embedded one does): its URL,
    which carries the password, and the password."""
    spec = embedded.redis_spec(tmp_path)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL)
    password = (tmp_path / embedded.REDIS_PASSWORD).read_text().strip()
    try:
        wait_for(lambda: _pings(spec.url), 20, "redis with a password")
        assert not _pings(spec.url.replace(f":{password}@", ""))
        yield spec.url, password
    finally:
        server.kill()
        server.wait()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_flower_is_monitoring_only_and_shows_no_password(redis_with_password, database_url,
                                                          tmp_path):
    """Flower's control API answers 403, and nothing it shows holds the broker's password."""
    redis_url, redis_password = redis_with_password
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")},
           "GOVSMS_REDIS_URL": redis_url, "GOVSMS_DATABASE_URL": database_url,
           "GOVSMS_DATA_DIR": str(tmp_path), "GOVSMS_BRIDGE_SECRET": SECRET,
           "GOVSMS_SECRET_KEY": SECRET[::-1], "GOVSMS_FLOWER_PORT": str(port),
           "GOVSMS_FLOWER_PASSWORD": FLOWER_PW}
    logs = {name: (tmp_path / f"{name}.log") for name in ("worker", "flower")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "inbound",
         "-n", "probe@%h", "--pool", "solo", "--without-gossip", "--without-mingle"],
        env=env, stdout=logs["worker"].open("ab"), stderr=subprocess.STDOUT)
    flower = subprocess.Popen([sys.executable, "-m", "workers.cli", "flower"], env=env,
                              stdout=logs["flower"].open("ab"), stderr=subprocess.STDOUT)
    base, auth = f"http://127.0.0.1:{port}", ("operator", FLOWER_PW)
    try:
        wait_for(lambda: "ready." in logs["worker"].read_text(), 60, "the worker")

        def listed() -> dict:
            try:
                found = httpx.get(f"{base}/api/workers?refresh=1", auth=auth, timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return {}
            return {n: w for n, w in found.items() if n.startswith("probe@") and w.get("conf")}

        [name] = wait_for(listed, 40, "the worker's configuration in flower")
        shown = [httpx.get(f"{base}{path}", auth=auth).text for path in (
            "/api/workers?refresh=1", f"/worker/{name}", "/workers", "/broker", "/api/tasks",
            "/api/queues/length")]
        assert "redbeat_redis_url" in shown[0] and name in shown[1]
        assert [page for page in shown if redis_password in page] == []
        control = [f"/api/worker/shutdown/{name}", f"/api/worker/pool/restart/{name}",
                   f"/api/worker/pool/grow/{name}?n=1", f"/api/worker/pool/shrink/{name}?n=1",
                   f"/api/worker/pool/autoscale/{name}?min=1&max=2",
                   f"/api/worker/queue/add-consumer/{name}?queue=outbound",
                   f"/api/worker/queue/cancel-consumer/{name}?queue=inbound",
                   "/api/task/apply/govsms.reconcile", "/api/task/async-apply/govsms.reconcile",
                   "/api/task/send-task/govsms.reconcile", "/api/task/abort/some-task-id",
                   f"/api/task/timeout/govsms.dispatch?workername={name}&hard=1",
                   f"/api/task/rate-limit/govsms.dispatch?workername={name}&ratelimit=1/h",
                   "/api/task/revoke/some-task-id?terminate=true"]
        answers = {path: httpx.post(f"{base}{path}", auth=auth, json={}, timeout=10).status_code
                   for path in control}
        assert answers == {path: 403 for path in control}
        time.sleep(0.5)
        assert worker.poll() is None and listed(), "the worker was stopped or lost its consumer"
        logged = logs["worker"].read_text() + logs["flower"].read_text()
        assert redis_password not in logged and FLOWER_PW not in logged
    finally:
        for process in (flower, worker):
            process.terminate()
        for process in (flower, worker):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_flower_control_is_there_when_allowed():
    from flower import urls

    from workers.flower import CONTROL_HANDLERS, ControlRefused, monitoring_only

    def handler(entry) -> type:
        return entry[1] if isinstance(entry, tuple) else entry.handler_class

    refused = monitoring_only(urls.handlers)
    assert {handler(e) for e in urls.handlers} >= set(CONTROL_HANDLERS)
    assert not {handler(e) for e in refused} & set(CONTROL_HANDLERS)
    assert sum(handler(e) is ControlRefused for e in refused) == len(CONTROL_HANDLERS)


def test_two_worker_hosts_share_the_load(gw):
    """Scale-out is Celery's own: another worker, another node name, the same broker."""
    argv = processes(gw.settings)["worker-inbound"]
    argv[argv.index("-n") + 1] = "inbound-b@%h"
    gw.spawn("worker-inbound-b", argv)
    wait_for(lambda: "ready." in gw.log("worker-inbound-b"), 60, "the second host")
    hello(gw, 120, prefix="scale")
    for name in ("worker-inbound", "worker-inbound-b"):
        assert gw.log(name).count("Task govsms.dispatch[") > 5, name


def test_the_dashboard_draws_every_panel_from_what_prometheus_scraped(gw, tmp_path):
    """Every query of the Grafana dashboard runs on a real Prometheus and finds our series."""
    pytest.importorskip("matplotlib", reason="make install installs the dashboard extra")
    try:
        binary = dashboard.find_prometheus()
    except RuntimeError as missing:
        pytest.skip(str(missing))
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as out:
        process = subprocess.Popen(
            dashboard.prometheus_argv(binary, tmp_path, gw.settings.ingest_url, port),
            stdout=out, stderr=subprocess.STDOUT)
    try:
        prometheus = dashboard.Prometheus(f"http://127.0.0.1:{port}")
        wait_for(prometheus.ready, 30, "prometheus")
        start = time.time()
        wait_for(lambda: prometheus.query_range("up == 1", start, time.time(), 1), 20,
                 "a first scrape")
        # A counter's series starts with the first message of its labels: rate() needs a
        # scrape of it before the messages it is to show.
        hello(gw, 1, prefix="board")
        wait_for(lambda: prometheus.query_range('govsms_inbound_total{service="none"}', start,
                                                time.time(), 1), 20, "the inbound series")
        hello(gw, 5, prefix="board")
        spec = json.loads(dashboard.DASHBOARD.read_text())
        inbound = next(p for p in spec["panels"] if p["title"].startswith("Inbound rate by"))
        # On the grid the drawing evaluates at (it starts at `start` and steps a scrape).
        wait_for(lambda: any(s.peak() for s in dashboard.fetch(
            prometheus, inbound, start, time.time(), dashboard.SCRAPE_S)), 30,
            "the inbound rate in prometheus")
        drawn = dashboard.render(prometheus, start, time.time(), tmp_path / "board.png")
    finally:
        process.terminate()
        process.wait(10)
    assert [d.title for d in drawn] == [p["title"] for p in spec["panels"]]
    by_title = {d.title: d for d in drawn}
    rates = by_title["Inbound rate by short code and service"].series
    assert [s.label for s in rates if s.peak()] == ["1414 none"]
    replies = by_title["Replies by outcome"].series
    assert [s.label for s in replies if s.peak()] == ["sent service_not_found"]
    assert by_title["Reply latency p95"].series[0].last() < 60
    for title in ("Queue depth", "Dead letters open", "SLA compliance, last hour"):
        assert by_title[title].series, title
    png = (tmp_path / "board.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000


UNMASKED = re.compile(r"(?<![\w-])\+?\d{10,15}(?![\w-])")


def test_logs_are_json_with_one_correlation_id_per_message_and_nothing_unmasked(gw, conn):
    conn.execute("INSERT INTO mbg.subscribers VALUES ('+77015550042', '880102300452')")
    conn.execute("INSERT INTO persons.individuals VALUES ('880102300452', 'T', '1988-01-02', "
                 "'valid')")
    response = gw.post(**{"from": "87015550042", "to": "1414", "text": "4 880102300452",
                          "id": f"log-{uuid.uuid4().hex[:6]}"})
    inbound_id = response.json()["id"]
    gw.replies_to(inbound_id)
    time.sleep(0.5)
    entries = [json.loads(line) for name in gw.processes for line in gw.log(name).splitlines()
               if line.startswith("{")]
    assert entries and all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)
    trail = [e["msg"] for e in entries if e.get("cid") == f"in-{inbound_id}"]
    assert any(m.startswith(f"inbound {inbound_id} from +7701***0042") for m in trail), trail
    assert "routed to housing_queue" in trail and "answered: housing_queue.no_data" in trail
    assert any(m.startswith("sent ") for m in trail), trail
    violations = [line for name in gw.processes for line in gw.log(name).splitlines()
                  if UNMASKED.search(line)]
    assert violations == []


def _bare_env(data_dir) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")}
    return {**env, "GOVSMS_DATA_DIR": str(data_dir)}


def test_status_without_a_gateway_says_so_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "workers.cli", "status"], env=_bare_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no gateway" in done.stderr and "govsms run" in done.stderr


def test_status_with_the_gateway_gone_says_so_in_one_line(tmp_path):
    # runtime.json left behind by a gateway killed outright: its servers are gone.
    (tmp_path / "runtime.json").write_text(json.dumps({
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "database_url": f"postgresql://govsms@127.0.0.1:{free_port()}/govsms"}))
    done = subprocess.run([sys.executable, "-m", "workers.cli", "status"], env=_bare_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "do not answer" in done.stderr


def test_replaying_all_with_none_open_is_no_error(database_url, redis_url, conn, monkeypatch):
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    monkeypatch.setenv("GOVSMS_REDIS_URL", redis_url)
    result = CliRunner().invoke(main, ["dead-letters", "replay", "--all"])
    assert (result.exit_code, result.output.strip()) == (0, "no open dead letters")
    missing = CliRunner().invoke(main, ["dead-letters", "replay", "424242"])
    assert missing.exit_code == 1 and "no dead letter 424242" in missing.output
