"""Signed callbacks to API clients, against a real HTTP receiver on loopback: every final
state of a client's SMS is POSTed, signed so the client can verify it, each event at least
once with a unique id, again later while the receiver answers 500; none for citizens'
replies or for a client without a callback_url."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psycopg
import pytest

from replies.transports.fake import MemoryTransport
from tests.support.client_api import PARTNER, PORTAL
from tests.support.pipeline import make_pipeline, receive
from workers import callbacks, messages, pipeline
from workers.app import _schedule
from workers.local.embedded import free_port
from workers.settings import ApiClient, Settings


class Receiver:
    """An HTTP server that records each request and answers the next status given."""

    def __init__(self) -> None:
        self.port = free_port()
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((dict(self.headers), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/govsms/events"

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


def clients(url: str) -> dict[str, ApiClient]:
    return {"portal": ApiClient(secret=PORTAL, senders=["EGOV"], callback_url=url),
            "partner": ApiClient(secret=PARTNER, senders=["3344"])}


def client_sms(conn: psycopg.Connection, database_url: str) -> tuple[list[int], list[int]]:
    """A two-part message of the portal's, one of the partner's and a citizen's reply, sent;
    the portal's parts and the partner's."""
    p = make_pipeline(database_url)
    try:
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        portal, _ = messages.add_notice(conn, key="api:portal:1", sender="EGOV",
                                        recipient="+77011234567", client="portal",
                                        parts=pipeline.to_parts("Vash dokument gotov. " * 10),
                                        deadline=deadline)
        partner, _ = messages.add_notice(conn, key="api:partner:1", sender="3344",
                                         recipient="+77011234568", client="partner",
                                         parts=pipeline.to_parts("x"), deadline=deadline)
        reply = pipeline.dispatch(p, [receive(conn, "hello")]).outbound
        pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [*portal, *partner, *reply])
    finally:
        p.pool.close()
    return portal, partner


def send(conn: psycopg.Connection, url: str, *, now: dt.datetime | None = None
         ) -> callbacks.Sent:
    with httpx.Client() as http:
        return callbacks.send_due(conn, clients(url), http, now=now)


@pytest.fixture
def auto(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_every_final_state_is_posted_signed_and_verifiable(conn, auto, database_url, receiver):
    portal, _ = client_sms(conn, database_url)
    messages.record_deliveries(conn, [(portal[0], "delivered"), (portal[1], "undeliverable")])
    sent = send(auto, receiver.url)
    assert (sent.delivered, sent.dropped) == (4, 1)  # the partner's has no callback_url
    events = receiver.events()
    assert sorted((e["type"], e["data"]["part"]) for e in events) == [
        ("message.delivered", 1), ("message.sent", 1), ("message.sent", 2),
        ("message.undeliverable", 2)]
    assert {e["data"]["message_id"] for e in events} == {portal[0]}
    assert len({e["id"] for e in events}) == 4
    for headers, body in receiver.got:
        assert callbacks.verify(PORTAL, headers[callbacks.TIMESTAMP_HEADER], body,
                                headers[callbacks.SIGNATURE_HEADER], time.time())
        assert not callbacks.verify(PARTNER, headers[callbacks.TIMESTAMP_HEADER], body,
                                    headers[callbacks.SIGNATURE_HEADER], time.time())
        assert not callbacks.verify(PORTAL, headers[callbacks.TIMESTAMP_HEADER], body + b" ",
                                    headers[callbacks.SIGNATURE_HEADER], time.time())
        assert b"gotov" not in body and b"7011234567" not in body
    # Sent once: nothing is due any more.
    assert send(auto, receiver.url).delivered == 0 and len(receiver.got) == 4


def test_a_receiver_that_fails_for_a_while_gets_every_event_later(conn, auto, database_url,
                                                                  receiver):
    client_sms(conn, database_url)
    receiver.answers = [500, 500, 503]
    first = send(auto, receiver.url)
    # One try for a failing client a round: its other event waits, untried.
    assert (first.delivered, first.failed, len(receiver.got)) == (0, 1, 1)
    assert send(auto, receiver.url).delivered == 0  # nothing before its backoff
    now, rounds = dt.datetime.now(dt.UTC), 1
    while auto.execute("SELECT count(*) FROM callbacks WHERE done_at IS NULL").fetchone()[0]:
        now, rounds = now + dt.timedelta(minutes=5), rounds + 1
        send(auto, receiver.url, now=now)
        assert rounds < 10
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 5 and len(set(ids)) == 2  # each repeat with its event's own id
    rows = auto.execute("SELECT outcome, attempts FROM callbacks WHERE client = 'portal' "
                        "ORDER BY id").fetchall()
    assert rows == [("delivered", 4), ("delivered", 1)]
    # A day of failures, then given up, recorded.
    receiver.answers = [500] * 10
    auto.execute("UPDATE callbacks SET done_at = NULL, outcome = NULL, at = now() - "
                 "interval '25 hours', next_at = now()")
    send(auto, receiver.url)
    assert auto.execute("SELECT DISTINCT outcome FROM callbacks WHERE client = 'portal'"
                        ).fetchall() == [("gave_up",)]


def test_a_citizens_reply_makes_no_event(conn, database_url):
    p = make_pipeline(database_url)
    try:
        reply = pipeline.dispatch(p, [receive(conn, "hello")]).outbound
        pipeline.deliver(p.pool, MemoryTransport(), p.sealer, reply)
    finally:
        p.pool.close()
    messages.record_deliveries(conn, [(reply[0], "delivered")])
    assert conn.execute("SELECT count(*) FROM callbacks").fetchone() == (0,)


def test_beat_sends_callbacks_when_there_are_clients():
    assert "callbacks" in _schedule(Settings(api_clients=clients("https://example.org/x")), [])
    assert "callbacks" not in _schedule(Settings(api_clients={}), [])


def test_the_task_sends_them(conn, database_url, receiver, monkeypatch, tmp_path, redis_url):
    from tests.support.keys import KEY
    from workers.app import create_app

    client_sms(conn, database_url)
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url),
                        ("SECRET_KEY", KEY), ("DATA_DIR", str(tmp_path)),
                        ("API_CLIENTS", json.dumps({"portal": {
                            "secret": PORTAL, "senders": ["EGOV"],
                            "callback_url": receiver.url}}))):
        monkeypatch.setenv(f"GOVSMS_{name}", value)
    app = create_app(Settings())
    try:
        app.tasks["govsms.callbacks"].apply()
    finally:
        app.govsms.pipeline.pool.close()
    assert len(receiver.got) == 2


def test_the_readmes_verify_accepts_what_the_gateway_signs(conn, auto, database_url,
                                                           receiver):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Callbacks"):]
    code = section[section.index("```python") + len("```python"):]
    scope: dict = {}
    exec(code[:code.index("```")], scope)  # noqa: S102 - the README's own snippet
    client_sms(conn, database_url)
    send(auto, receiver.url)
    headers, body = receiver.got[0]
    assert scope["verify"](PORTAL, headers[callbacks.TIMESTAMP_HEADER], body,
                           headers[callbacks.SIGNATURE_HEADER])
    assert not scope["verify"](PARTNER, headers[callbacks.TIMESTAMP_HEADER], body,
                               headers[callbacks.SIGNATURE_HEADER])
