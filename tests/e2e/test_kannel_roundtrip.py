"""Kannel end to end: fakesmsc -> bearerbox -> smsbox get-url -> the real pipeline -> sendsms -> fakesmsc.

Kannel is real (Debian's kannel + kannel-extras, installed by deploy/ensure-peers);
fakesmsc plays the phones. These tests skip only when Kannel is not installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import psycopg
import pytest

from replies.transports import Sms
from replies.transports.kannel import KannelTransport
from tests.support.gateway import Gateway, gateway_settings, wait_for
from tests.support.keys import SECRET
from tests.support.peers.kannel import Kannel, Received, missing
from workers.local.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(missing() is not None, reason=str(missing()))]

NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."
HOUSING_NOT_IN_MBG = ("Vi ne mozhete poluchit spravku, Vas net v mobilnoi baze grazhdan. "
                      "Registraciu mozjno proiti na egov.kz I v Tsone.")


@pytest.fixture(scope="module")
def kannel_gateway(database_url: str, redis_url: str,
                   tmp_path_factory) -> Iterator[tuple[Kannel, Gateway]]:
    folder = tmp_path_factory.mktemp("kannel-gateway")
    settings = gateway_settings(database_url, redis_url, folder, SECRET)
    kannel = Kannel(tmp_path_factory.mktemp("kannel"), settings.ingest_url, SECRET)
    gateway = Gateway(settings.model_copy(update={"transport": kannel.transport_url}), folder)
    try:
        kannel.start()
        gateway.start()
        yield kannel, gateway
    finally:
        gateway.stop()
        kannel.stop()


@pytest.fixture
def kannel(kannel_gateway: tuple[Kannel, Gateway], conn: psycopg.Connection) -> Kannel:
    """Kannel in front of the running gateway, with an empty database."""
    return kannel_gateway[0]


def _replies_to(kannel: Kannel, phone: str, count: int = 1) -> list[Received]:
    return wait_for(lambda: len(got := [r for r in kannel.received() if r.receiver == phone])
                    >= count and got, 30, f"{count} SMS to {phone} at fakesmsc")


def test_a_latin_mo_gets_the_not_found_reply_through_kannel(kannel, conn):
    kannel.mo("+77011230001", "1414", "hello")
    [reply] = _replies_to(kannel, "+77011230001")
    assert (reply.sender, reply.kind, reply.text()) == ("1414", "text", NOT_FOUND)
    source, text = conn.execute("SELECT source, text FROM inbound").fetchone()
    assert (source, text) == ("fake", "hello")     # %i, the SMSC link, is the source


def test_a_cyrillic_mo_arrives_as_utf8_and_is_parsed(kannel, conn):
    # The phone sends UCS-2; smsbox's mo-recode hands get-url UTF-8 (deploy/kannel/smsbox.conf).
    kannel.mo("+77011230002", "1414", "Очередь на жилье")
    [reply] = _replies_to(kannel, "+77011230002")
    assert reply.text() == HOUSING_NOT_IN_MBG      # matched the Cyrillic keyword
    assert conn.execute("SELECT text, service FROM inbound").fetchone() == (
        "Очередь на жилье", "housing_queue")


@pytest.mark.parametrize(("text", "coding", "sizes"), [
    ("Очередь на жилье: nomer 1234. " * 4, "ucs2", [67, 53]),
    ("Tehosmotr 123***01 deistvitelen. " * 6, "gsm7", [153, 45]),
])
def test_a_long_mt_reaches_the_phone_as_two_concatenated_parts(kannel, text, coding, sizes):
    phone = f"+7701124{len(text):04d}"
    transport = KannelTransport.from_url(kannel.transport_url)
    assert transport.send(Sms(1, None, "1414", phone, text)) is None
    transport.close()
    first, second = _replies_to(kannel, phone, 2)
    # Kannel split it: a concatenation UDH (IEI 0, 8-bit reference) on each part.
    assert first.udh[:4] == second.udh[:4] and first.udh[:3] == b"\x05\x00\x03"
    assert (first.udh[4:], second.udh[4:]) == (b"\x02\x01", b"\x02\x02")
    parts = [first.text(coding), second.text(coding)]
    assert [len(p) for p in parts] == sizes
    assert "".join(parts) == text


def test_parts_the_pipeline_split_keep_their_udh(kannel):
    phone = "+77011239999"
    transport = KannelTransport.from_url(kannel.transport_url)
    for n, part in enumerate(["Очередь на ", "жилье"], 1):
        transport.send(Sms(7, None, "1414", phone, part, part=n, parts=2, reference=0xA7,
                           coding="ucs2"))
    transport.close()
    received = _replies_to(kannel, phone, 2)
    assert [r.udh for r in received] == [b"\x05\x00\x03\xa7\x02\x01", b"\x05\x00\x03\xa7\x02\x02"]
    assert "".join(r.text("ucs2") for r in received) == "Очередь на жилье"


class _DlrSink(BaseHTTPRequestHandler):
    """Stands in for the ingest's delivery-report route, which is not built yet."""

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_delivery_report_comes_back_to_the_dlr_url(kannel):
    sink = ThreadingHTTPServer(("127.0.0.1", free_port()), _DlrSink)
    sink.hits = []
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    template = f"http://127.0.0.1:{sink.server_address[1]}/dlr?outbound={{outbound_id}}" \
               "&part={part}&type=%d"
    transport = KannelTransport.from_url(f"{kannel.transport_url}?dlr-url={quote(template)}")
    transport.send(Sms(42, None, "1414", "+77011238888", "Kod: 1234"))
    transport.close()
    try:
        [hit] = wait_for(lambda: sink.hits, 20, "the delivery report")
    finally:
        sink.shutdown()
    assert hit == "/dlr?outbound=42&part=1&type=1"    # 1: delivered to the phone
