"""The ingest's doors: authenticate, then bound, then read; short answers that echo nothing.

In-process requests (TestClient) cover the rules; a real `govsms ingest` process, spoken to
over raw sockets, proves what only a server shows: a body announced but never sent is not
waited for, forwarded addresses are not believed, slow headers get the connection dropped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.support.keys import KEY, SECRET
from workers.ingest import door
from workers.ingest.http import create_app
from workers.local.embedded import free_port
from workers.settings import ApiClient, Settings

TOKEN = {"X-Bridge-Token": SECRET}
PORTAL = "portal-secret-0123456789abcdef0123456789"
BEARER = {"Authorization": f"Bearer {PORTAL}"}
SMS = {"from": "87011234567", "to": "1414", "text": "hello", "id": "d-1", "smsc": "beeline"}
ALLOWED_SOURCE = "127.0.0.2"  # the real server's only allowed bridge address
ANSWER_WITHIN_S = 5.0  # a bound on waiting, not a measurement: the answer comes at once
FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture
def client(settings: Settings, conn: psycopg.Connection) -> Iterator[TestClient]:
    portal = ApiClient(secret=PORTAL, senders=["1414"], manages_accounts=True)
    with TestClient(create_app(settings.model_copy(update={"api_clients": {"portal": portal}}))
                    ) as test_client:
        yield test_client


def count_inbound(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM inbound").fetchone()[0]


# Finding 1: bodies bounded, error bodies short.

def test_a_validation_error_names_the_field_and_rule_but_never_echoes_the_value(client, conn):
    response = client.post("/v1/messages/inbound", headers=TOKEN,
                           json={**SMS, "text": "Q" * 20_000, "smsc": "\x01"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "text: at most 10000 characters" in detail
    assert "smsc: control characters are not allowed here" in detail
    assert "QQQQ" not in response.text and len(response.content) < 500
    assert count_inbound(conn) == 0


def test_malformed_json_is_named_not_echoed(client):
    response = client.post("/v1/messages/inbound", headers={**TOKEN, "Content-Type":
                                                            "application/json"},
                           content=b'{"from": "SECRET-ISH' + b"x" * 5000)
    assert response.status_code == 422
    assert "SECRET-ISH" not in response.text and len(response.content) < 500


def test_a_body_past_64_kb_is_refused_with_413(client, conn):
    response = client.post("/v1/messages/inbound", headers=TOKEN,
                           json={**SMS, "text": "x" * 70_000})
    assert response.status_code == 413
    assert len(response.content) < 200
    assert count_inbound(conn) == 0


def test_a_chunked_body_is_counted_as_it_streams_and_stopped_at_the_limit(client, conn):
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(100):  # 100 x 8 KB: the door stops reading at 64 KB
            sent.append(1)
            yield b" " * 8192

    response = client.post("/v1/messages/inbound", headers={**TOKEN, "Content-Type":
                                                            "application/json"},
                           content=chunks())
    assert response.status_code == 413
    assert len(response.content) < 200
    assert count_inbound(conn) == 0


def test_the_client_api_body_is_bounded_too(client):
    response = client.post("/v1/messages/outbound", headers=BEARER,
                           json={"to": "+77011234567", "sender": "1414", "text": "x" * 70_000})
    assert response.status_code == 413


def test_a_full_batch_of_the_longest_texts_fits_the_batch_bound(client, conn):
    batch = [{**SMS, "id": f"full-{n}", "text": "x" * 10_000} for n in range(500)]
    body = json.dumps(batch).encode()
    assert door.BODY_LIMIT < len(body) <= door.BATCH_BODY_LIMIT
    response = client.post("/v1/messages/inbound/batch", headers={
        **TOKEN, "Content-Type": "application/json"}, content=body)
    assert response.status_code == 202
    assert count_inbound(conn) == 500


def test_a_batch_past_its_bound_is_refused_with_413(client, conn):
    body = b"[" + b" " * door.BATCH_BODY_LIMIT + b"]"
    response = client.post("/v1/messages/inbound/batch", headers={
        **TOKEN, "Content-Type": "application/json"}, content=body)
    assert response.status_code == 413
    assert "fewer messages" in response.json()["detail"]


# Finding 2: an empty token never matches.

def test_an_empty_token_never_matches_even_an_empty_secret(settings, conn):
    # model_copy does not validate: the app itself must refuse, whatever the settings allow.
    empty = settings.model_copy(update={"bridge_secret": SecretStr("")})
    with TestClient(create_app(empty)) as test_client:
        assert test_client.post("/v1/messages/inbound", json=SMS,
                                headers={"X-Bridge-Token": ""}).status_code == 401
        assert test_client.post("/v1/messages/inbound", json=SMS).status_code == 401
        assert test_client.get("/sms/inbound", params={**SMS, "token": ""}).status_code == 401
    assert count_inbound(conn) == 0
    assert door.check_bridge(empty, "", "10.0.0.1", "") == door.Refusal(
        401, "bad or missing bridge token")


# Finding 3: the token in the query only on Kannel's two routes.

def test_the_query_token_opens_only_kannels_get_url_and_dlr_url(client, conn):
    query = {"token": SECRET}
    assert client.post("/v1/messages/inbound", params=query, json=SMS).status_code == 401
    assert client.post("/v1/messages/inbound/batch", params=query, json=[SMS]).status_code == 401
    assert client.get("/v1/messages/inbound/1/replies", params=query).status_code == 401
    assert count_inbound(conn) == 0
    assert client.get("/sms/inbound", params={**SMS, **query}).status_code == 202
    assert client.get("/sms/dlr", params={"outbound": 1, "type": 1, **query}).status_code == 404


def test_a_token_in_a_posted_form_does_not_open_the_door(client, conn):
    # Reading the form would mean reading the body before authenticating.
    assert client.post("/sms/inbound", data={**SMS, "token": SECRET}).status_code == 401
    assert count_inbound(conn) == 0


# Finding 6: no public API description.

@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_the_api_description_is_not_served(client, path):
    assert client.get(path).status_code in (401, 404)
    assert client.get(path, headers=BEARER).status_code == 404
    assert client.app.openapi_url is None


def test_health_and_metrics_stay_open(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    assert client.get("/metrics").status_code == 200


# Finding 7: only configured short codes.

@pytest.mark.parametrize("shortcode", ["9999", "KaspiBank", "1414\u200f", "8188 "])
def test_a_message_to_a_short_code_not_configured_is_refused_with_the_reason(client, conn,
                                                                              shortcode):
    response = client.post("/v1/messages/inbound", headers=TOKEN, json={**SMS, "to": shortcode})
    assert response.status_code == 422
    assert response.json()["detail"] == ["to: not a configured short code (1414, 8188)"]
    batch = client.post("/v1/messages/inbound/batch", headers=TOKEN,
                        json=[SMS, {**SMS, "id": "d-2", "to": shortcode}])
    assert batch.status_code == 422
    assert batch.json()["detail"] == ["1.to: not a configured short code (1414, 8188)"]
    kannel = client.get("/sms/inbound", params={**SMS, "to": shortcode, "token": SECRET})
    assert kannel.status_code == 400
    assert "not a configured short code" in kannel.text
    assert count_inbound(conn) == 0


# Finding 8: the length limit is named.

def test_a_long_kannel_text_is_refused_naming_the_limit_without_the_text(client, conn):
    response = client.get("/sms/inbound", params={**SMS, "text": "Ж" * 10_500, "token": SECRET})
    assert response.status_code == 400
    assert response.json()["detail"] == ["text: at most 10000 characters"]
    assert "ЖЖ" not in response.text
    assert count_inbound(conn) == 0


def test_a_100_kb_json_text_is_refused_naming_the_limit_without_the_text(client, conn):
    response = client.post("/v1/messages/inbound", headers=TOKEN,
                           json={**SMS, "text": "Q" * 100_000})
    assert response.status_code == 413
    assert "10000 characters" in response.json()["detail"]
    assert "QQ" not in response.text and len(response.content) < 200


# Finding 9: receipts for messages that are not ours.

def test_a_receipt_for_an_unknown_or_negative_outbound_id_is_refused_and_logged(client, conn,
                                                                               caplog):
    with caplog.at_level(logging.WARNING, logger="workers.ingest"):
        unknown = client.get("/sms/dlr", params={"outbound": 424242, "type": 1}, headers=TOKEN)
        negative = client.get("/sms/dlr", params={"outbound": -5, "type": 1}, headers=TOKEN)
    assert unknown.status_code == 404
    assert negative.status_code == 400
    assert "unknown outbound 424242" in caplog.text
    assert "negative outbound id" in caplog.text


def test_a_receipt_for_our_own_message_is_taken_also_when_it_changes_nothing(client, conn):
    inbound_id = client.post("/v1/messages/inbound", json=SMS, headers=TOKEN).json()["id"]
    outbound_id = conn.execute(
        "INSERT INTO outbound (inbound_id, sender, recipient, text, deadline) "
        "VALUES (%s, '1414', '+77011234567', 'hi', now()) RETURNING id", (inbound_id,)
    ).fetchone()[0]
    receipt = {"outbound": outbound_id, "type": 1}
    assert client.get("/sms/dlr", params=receipt, headers=TOKEN).status_code == 200
    # Delivered is final; a repeat of the receipt is still ours.
    assert client.get("/sms/dlr", params=receipt, headers=TOKEN).status_code == 200
    assert conn.execute("SELECT delivery FROM outbound").fetchone() == ("delivered",)


# Finding 10: replies only for the bridge that knows the message.

def test_replies_are_read_only_with_the_bridges_own_id_and_link(client, conn):
    inbound_id = client.post("/v1/messages/inbound", json=SMS, headers=TOKEN).json()["id"]
    conn.execute("INSERT INTO outbound (inbound_id, sender, recipient, text, deadline) "
                 "VALUES (%s, '1414', '+77011234567', 'hi', now())", (inbound_id,))
    path = f"/v1/messages/inbound/{inbound_id}/replies"
    own = client.get(path, headers=TOKEN, params={"id": "d-1", "smsc": "beeline"})
    assert [r["text"] for r in own.json()["replies"]] == ["hi"]
    for guess in ({}, {"id": "d-1"}, {"id": "d-1", "smsc": "kcell"},
                  {"id": "d-2", "smsc": "beeline"}):
        assert client.get(path, headers=TOKEN, params=guess).status_code in (404, 422)
    other = client.get(f"/v1/messages/inbound/{inbound_id + 1}/replies", headers=TOKEN,
                       params={"id": "d-1", "smsc": "beeline"})
    assert other.status_code == 404


# A real server, as `govsms ingest` starts it.

@pytest.fixture(scope="module")
def served(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[int]:
    """The port of a `govsms ingest` process: bridges only from 127.0.0.2, 1 s for headers."""
    folder: Path = tmp_path_factory.mktemp("served")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "GOVSMS_DATABASE_URL": database_url,
           "GOVSMS_REDIS_URL": redis_url, "GOVSMS_DATA_DIR": str(folder),
           "GOVSMS_BRIDGE_SECRET": SECRET, "GOVSMS_SECRET_KEY": KEY,
           "GOVSMS_HTTP_PORT": str(port), "GOVSMS_BRIDGE_ALLOW_IPS": f"{ALLOWED_SOURCE}/32",
           "GOVSMS_HTTP_HEADER_TIMEOUT_S": "1",
           "GOVSMS_API_CLIENTS": json.dumps({"portal": {"secret": PORTAL, "senders": ["1414"]}}),
           "GOVSMS_LOG_FORMAT": "text"}
    env.pop("GOVSMS_TRUSTED_PROXIES", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    with (folder / "ingest.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "workers.cli", "ingest"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            assert process.poll() is None, (folder / "ingest.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("govsms ingest did not answer /healthz within 30 s")
        yield port
    finally:
        process.terminate()
        process.wait(15)


def exchange(port: int, request: bytes, *, source: str = ALLOWED_SOURCE) -> bytes:
    """Send `request` raw and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S,
                                  source_address=(source, 0)) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def announce(path: str, length: int, *headers: str) -> bytes:
    """Request headers announcing a body of `length` bytes, and none of it."""
    lines = [f"POST {path} HTTP/1.1", "Host: ingest", "Content-Type: application/json",
             f"Content-Length: {length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(("path", "headers", "expected"), [
    ("/v1/messages/inbound", (), 401),
    ("/v1/messages/inbound", ("X-Bridge-Token: wrong",), 401),
    ("/v1/messages/inbound", (f"X-Bridge-Token: {SECRET}",), 413),
    ("/v1/messages/inbound/batch", (f"X-Bridge-Token: {SECRET}",), 413),
    ("/sms/inbound", (f"X-Bridge-Token: {SECRET}",), 413),
    ("/v1/otp", (), 401),
    ("/v1/messages/outbound", (f"Authorization: Bearer {PORTAL}",), 413),
    ("/v1/accounts/someone/password-changed", ("Authorization: Bearer nope",), 401),
])
def test_a_50_mb_body_announced_and_never_sent_is_answered_at_once(served, path, headers,
                                                                    expected):
    # Were the body awaited, no answer would come and the read would time out.
    answer = exchange(served, announce(path, FIFTY_MB, *headers))
    assert status(answer) == expected
    assert len(answer) < 1000


@pytest.mark.parametrize(("length", "named"), [(20_000, True), (100_000, False)])
def test_a_long_text_in_kannels_get_url_is_refused_short(served, conn, length, named):
    # Past 64 KB of URL the HTTP parser itself refuses the request, before the app.
    request = (f"GET /sms/inbound?from=87011234567&to=1414&id=long&text={'x' * length} HTTP/1.1"
               f"\r\nHost: ingest\r\nConnection: close\r\nX-Bridge-Token: {SECRET}\r\n\r\n")
    answer = exchange(served, request.encode())
    assert status(answer) == 400
    assert b"xxxx" not in answer and len(answer) < 1000
    assert (b"text: at most 10000 characters" in answer) is named
    assert count_inbound(conn) == 0


def test_a_forwarded_address_from_loopback_is_not_believed(served, conn):
    body = json.dumps({**SMS, "id": "forwarded"})
    request = (f"POST /v1/messages/inbound HTTP/1.1\r\nHost: ingest\r\nConnection: close\r\n"
               f"X-Bridge-Token: {SECRET}\r\nX-Forwarded-For: {ALLOWED_SOURCE}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    assert status(exchange(served, request.encode(), source="127.0.0.1")) == 403
    assert count_inbound(conn) == 0
    # From the allowed address itself the same request gets in.
    assert status(exchange(served, request.encode())) == 202


def test_headers_sent_slowly_get_the_connection_dropped(served):
    dropped = None
    with socket.create_connection(("127.0.0.1", served), timeout=ANSWER_WITHIN_S,
                                  source_address=(ALLOWED_SOURCE, 0)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n")
        for drip in range(60):  # 15 s of dripping; the server gives headers 1 s
            try:
                sock.sendall(b"X-Drip: %d\r\n" % drip)
            except OSError:
                dropped = b""
                break
            time.sleep(0.25)
            sock.setblocking(False)
            try:
                dropped = sock.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                dropped = b""
            sock.setblocking(True)
            sock.settimeout(ANSWER_WITHIN_S)
            if dropped is not None:
                break
    assert dropped is not None, "the server kept waiting for the headers"
    assert dropped == b"" or status(dropped) == 408


def test_a_prompt_caller_on_the_same_server_is_served(served):
    answer = exchange(served, b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nConnection: close\r\n\r\n")
    assert status(answer) == 200


def test_a_connection_that_sends_nothing_is_closed(served):
    with socket.create_connection(("127.0.0.1", served), timeout=ANSWER_WITHIN_S,
                                  source_address=(ALLOWED_SOURCE, 0)) as sock:
        assert sock.recv(1024) == b""  # closed quietly; a timeout here fails the test


def test_headers_past_their_bound_are_refused(served):
    pad = "".join(f"X-Pad-{n}: {'p' * 1000}\r\n" for n in range(140))  # 140 KB
    answer = exchange(served, f"GET /healthz HTTP/1.1\r\nHost: ingest\r\n{pad}\r\n".encode())
    assert status(answer) == 431
    assert b"ppp" not in answer


def test_forwarded_headers_are_believed_only_from_configured_proxies(settings):
    app = create_app(settings)
    plain = door.server_config(settings, app)
    assert plain.proxy_headers is False
    proxied = Settings(**{**settings.model_dump(), "trusted_proxies": "10.0.0.1, 10.1.0.0/16"})
    config = door.server_config(proxied, app)
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == ["10.0.0.1/32", "10.1.0.0/16"]
