"""Outbound transports: the file transport, and Kannel's sendsms against a stand-in smsbox."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from replies.sealing import Sealer
from replies.transports import FileTransport, Sms, TransportError, from_url
from replies.transports.kannel import WINDOW, KannelTransport
from tests.support.keys import KEY
from tests.support.pipeline import make_pipeline
from workers import messages, pipeline
from workers.local.embedded import free_port

SMS = Sms(outbound_id=7, inbound_id=3, sender="1414", recipient="+77011234567",
          text="Servis ne naiden. Isprav'te vash tekst.")


def test_file_transport_writes_one_json_line_per_sms(tmp_path):
    transport = from_url(f"file://{tmp_path / 'out' / 'outbox.jsonl'}")
    transport.send(SMS)
    transport.send(Sms(8, None, "1414", "+77011234568", "Очередь: 5"))
    transport.close()
    lines = [json.loads(line) for line in (tmp_path / "out" / "outbox.jsonl").read_text().splitlines()]
    assert [(l["from"], l["to"], l["text"], l["inbound_id"]) for l in lines] == [
        ("1414", "+77011234567", SMS.text, 3), ("1414", "+77011234568", "Очередь: 5", None)]
    assert all(l["sent_at"].endswith("+00:00") for l in lines)


def _append_many(path: str, worker: int) -> None:
    transport = FileTransport(path)
    for n in range(200):
        transport.send(Sms(n, worker, "1414", "+7701", "x" * 3000))
    transport.close()


def test_file_transport_lines_never_interleave_across_processes(tmp_path):
    path = str(tmp_path / "outbox.jsonl")
    workers = [multiprocessing.Process(target=_append_many, args=(path, w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    lines = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert len(lines) == 800
    assert all(json.loads(line)["text"] == "x" * 3000 for line in lines)


def test_file_transport_writes_a_window_of_sms_at_once(tmp_path):
    transport = FileTransport(tmp_path / "outbox.jsonl")
    texts = [Sms(n, n, "1414", "+77011234567", f"part {n}") for n in range(3)]
    assert transport.send_many(texts) == [None] * 3
    transport.close()
    lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert [(line["outbound_id"], line["text"]) for line in lines] == [
        (n, f"part {n}") for n in range(3)]


def test_file_transport_error_is_retryable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TransportError) as caught:
        FileTransport(blocker / "outbox.jsonl").send(SMS)
    assert caught.value.retryable


class _Smsbox(BaseHTTPRequestHandler):
    """Answers as Kannel's smsbox does, after `delay_s`; the status to answer is set on the
    server, which counts the requests it holds at once."""

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.requests.append((urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)))
            server.held += 1
            server.most_held = max(server.most_held, server.held)
        time.sleep(server.delay_s)
        with server.lock:
            server.held -= 1
        status, body = server.answer
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def smsbox() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Smsbox)
    server.requests, server.answer = [], (202, "0: Accepted for delivery")
    server.lock, server.held, server.most_held, server.delay_s = threading.Lock(), 0, 0, 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _kannel(server: ThreadingHTTPServer) -> KannelTransport:
    port = server.server_address[1]
    transport = from_url(f"kannel+http://gw:s3cret@127.0.0.1:{port}/cgi-bin/sendsms")
    assert isinstance(transport, KannelTransport)
    return transport


def test_kannel_sendsms_request(smsbox):
    _kannel(smsbox).send(SMS)
    path, query = smsbox.requests[0]
    assert path == "/cgi-bin/sendsms"
    assert {k: v[0] for k, v in query.items()} == {
        "username": "gw", "password": "s3cret", "from": "1414", "to": "+77011234567",
        "text": SMS.text, "charset": "UTF-8", "coding": "0"}


def test_kannel_cyrillic_goes_as_ucs2(smsbox):
    _kannel(smsbox).send(Sms(1, 1, "1414", "+77011234567", "Очередь"))
    assert smsbox.requests[0][1]["coding"] == ["2"]
    assert smsbox.requests[0][1]["text"] == ["Очередь"]


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (403, False), (503, True),
                                                    (500, True)])
def test_kannel_errors_are_classified(smsbox, status, retryable):
    smsbox.answer = (status, "Authorization failed" if status == 403 else "busy")
    with pytest.raises(TransportError) as caught:
        _kannel(smsbox).send(SMS)
    assert caught.value.retryable is retryable
    assert str(status) in caught.value.reason


class _KeepAliveSmsbox(BaseHTTPRequestHandler):
    """smsbox over HTTP/1.1: one connection for many requests; counts the connections."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.server.sockets.append(self.connection)

    def do_GET(self) -> None:
        body = b"0: Accepted for delivery"
        self.send_response(202)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_kannel_keeps_its_connection_and_opens_another_once_smsbox_closed_it():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _KeepAliveSmsbox)
    server.connections, server.sockets = 0, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transport = _kannel(server)
        for _ in range(3):
            assert transport.send(SMS) is None
        assert server.connections == 1
        server.sockets[0].shutdown(socket.SHUT_RDWR)  # smsbox closes the idle connection
        time.sleep(0.1)
        assert transport.send(SMS) is None  # not an error, not in doubt: a new connection
        assert server.connections == 2
        transport.close()
    finally:
        server.shutdown()


def test_kannel_unreachable_is_retryable():
    transport = from_url(f"kannel+http://gw:pw@127.0.0.1:{free_port()}/cgi-bin/sendsms")
    with pytest.raises(TransportError) as caught:
        transport.send(SMS)
    assert caught.value.retryable and not caught.value.in_doubt  # nothing was sent


def test_kannel_unreachable_tries_one_connection_for_a_window_not_one_a_submit(monkeypatch):
    transport = from_url(f"kannel+http://gw:pw@127.0.0.1:{free_port()}/cgi-bin/sendsms")
    connects = []
    connection = transport._connection
    monkeypatch.setattr(transport, "_connection", lambda: connects.append(1) or connection())
    outcomes = transport.send_many([Sms(n, n, "1414", "+77011234567", "x") for n in range(5)])
    assert all(isinstance(o, TransportError) and o.retryable and not o.in_doubt
               for o in outcomes)
    assert len(connects) == 1


def test_kannel_asked_but_not_answered_is_in_doubt(smsbox):
    smsbox.delay_s = 1.0
    port = smsbox.server_address[1]
    transport = KannelTransport(f"http://127.0.0.1:{port}/cgi-bin/sendsms", "gw", "pw",
                                timeout_s=0.2)
    with pytest.raises(TransportError) as caught:
        transport.send(SMS)
    assert caught.value.retryable and caught.value.in_doubt  # smsbox may have queued it


def test_kannel_a_window_not_answered_waits_its_timeout_once_not_once_a_submit(smsbox):
    smsbox.delay_s = 2.0
    port = smsbox.server_address[1]
    transport = KannelTransport(f"http://127.0.0.1:{port}/cgi-bin/sendsms", "gw", "pw",
                                timeout_s=0.3, window=6)
    started = time.monotonic()
    outcomes = transport.send_many([Sms(n, n, "1414", "+77011234567", "x") for n in range(6)])
    assert time.monotonic() - started < 1.2  # six timeouts one after another: 1.8 s
    assert all(isinstance(o, TransportError) and o.in_doubt for o in outcomes)


def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="unknown transport"):
        from_url("carrier-pigeon://loft")


def test_a_sealed_text_stays_sealed_in_the_outbox(tmp_path):
    sealer = Sealer(KEY)
    clear = "TK: an0190, MK: Xy7pQ2wz la tai khoan dang nhap"
    transport = FileTransport(tmp_path / "outbox.jsonl")
    transport.send(Sms(9, 4, "8188", "+84905123456", clear, sealed=sealer.seal(clear)))
    transport.send(SMS)
    transport.close()
    written = (tmp_path / "outbox.jsonl").read_text()
    assert "Xy7pQ2wz" not in written and "MK:" not in written
    sealed, plain = [json.loads(line) for line in written.splitlines()]
    assert sealed["sealed"] is True and sealer.unseal(sealed["text"]) == clear
    assert (plain["sealed"], plain["text"]) == (False, SMS.text)


def test_the_pipeline_hands_the_file_transport_the_sealed_form(conn, database_url, tmp_path):
    p = make_pipeline(database_url)
    try:
        ids, _ = messages.add_notice(conn, key="sealed-1", sender="1414",
                                     recipient="+77011234567",
                                     parts=pipeline.to_parts("Kod: 493817", p.sealer),
                                     deadline=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60))
        transport = FileTransport(tmp_path / "outbox.jsonl")
        assert pipeline.deliver(p.pool, transport, p.sealer, ids).sent == ids
        transport.close()
    finally:
        p.pool.close()
    [line] = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert "493817" not in json.dumps(line) and line["sealed"] is True
    assert p.sealer.unseal(line["text"]) == "Kod: 493817"


def test_kannel_send_many_has_its_window_of_submits_in_flight(smsbox):
    smsbox.delay_s = 0.05
    port = smsbox.server_address[1]
    transport = from_url(f"kannel+http://gw:pw@127.0.0.1:{port}/cgi-bin/sendsms?window=4")
    texts = [Sms(n, n, "1414", "+77011234567", f"part {n}") for n in range(4)]
    assert transport.send_many(texts) == [None] * 4
    transport.close()
    assert smsbox.most_held == 4
    assert sorted(q["text"][0] for _, q in smsbox.requests) == [f"part {n}" for n in range(4)]


def test_kannel_send_many_returns_each_failure_in_its_place(smsbox):
    smsbox.answer = (503, "busy")
    [failed] = _kannel(smsbox).send_many([SMS])
    assert isinstance(failed, TransportError) and failed.retryable


def test_the_kannel_window_comes_from_the_url():
    url = "kannel+http://gw:pw@127.0.0.1:13013/cgi-bin/sendsms"
    assert from_url(url).window == WINDOW
    assert from_url(f"{url}?window=2").window == 2
