"""The client API on the real PostgreSQL and Redis: codes, outbound messages, account events.

The clock is frozen and moved by hand for the 10-minute rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from fastapi.testclient import TestClient

from services.stores import accounts
from tests.support.client_api import (
    IIN,
    OTHER_PHONE,
    PARTNER,
    PHONE,
    PORTAL,
    T0,
    Clock,
    auth,
    sent_code,
)
from tests.support.keys import SECRET
from workers import messages
from workers.cli import main
from workers.ingest.http import create_app
from workers.settings import ApiClient, Settings


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    clients = {"portal": ApiClient(secret=PORTAL, senders=["1414", "EGOV"], manages_accounts=True,
                                   links_numbers=True),
               "partner": ApiClient(secret=PARTNER, senders=["3344"])}
    return settings.model_copy(update={"api_clients": clients})


@pytest.fixture
def client(api_settings, conn, clock) -> Iterator[TestClient]:
    limits = redis.Redis.from_url(api_settings.redis_url)
    for key in limits.scan_iter("govsms:rate:*"):
        limits.delete(key)
    with TestClient(create_app(api_settings, clock=clock)) as test_client:
        yield test_client


def request_code(client, purpose: str = "link_number", phone: str = PHONE, secret: str = PORTAL,
                 **extra):
    return client.post("/v1/otp", json={"phone": phone, "purpose": purpose, "iin": IIN, **extra},
                       headers=auth(secret))


def verify(client, code: str, phone: str = PHONE, secret: str = PORTAL) -> dict:
    response = client.post("/v1/otp/verify", json={"phone": phone, "code": code},
                           headers=auth(secret))
    assert response.status_code == 200
    return response.json()


def test_a_code_is_sent_sealed_kept_hashed_and_works_once(client, conn, database_url):
    response = request_code(client, phone="8 701 123 45 67")
    assert response.status_code == 202
    assert response.json()["expires_at"] == (T0 + dt.timedelta(minutes=10)).isoformat()
    code = sent_code(conn, database_url)
    stored, = conn.execute("SELECT code_hash FROM otp.codes").fetchone()
    texts = [r[0] for r in conn.execute("SELECT text FROM outbound")]
    assert code not in stored and not any(code in t for t in texts)
    assert verify(client, code) == {"ok": True, "purpose": "link_number"}
    assert verify(client, code) == {"ok": False, "reason": "no_code"}


def test_link_number_replaces_the_iins_previous_number(client, conn, database_url):
    conn.execute("INSERT INTO mbg.subscribers VALUES (%s, %s)", (OTHER_PHONE, IIN))
    request_code(client)
    assert verify(client, sent_code(conn, database_url))["ok"]
    assert conn.execute("SELECT phone, iin FROM mbg.subscribers").fetchall() == [(PHONE, IIN)]


def test_a_wrong_or_expired_code_links_nothing(client, conn, database_url, clock):
    request_code(client)
    code = sent_code(conn, database_url)
    assert verify(client, "000000" if code != "000000" else "111111") == {
        "ok": False, "reason": "invalid_code"}
    clock.now = T0 + dt.timedelta(minutes=10)
    assert verify(client, code) == {"ok": False, "reason": "expired"}
    assert conn.execute("SELECT count(*) FROM mbg.subscribers").fetchone() == (0,)


def test_a_code_still_works_just_inside_ten_minutes(client, conn, database_url, clock):
    request_code(client)
    code = sent_code(conn, database_url)
    clock.now = T0 + dt.timedelta(minutes=10) - dt.timedelta(seconds=1)
    assert verify(client, code)["ok"]


def test_five_wrong_tries_kill_the_code(client, conn, database_url):
    request_code(client)
    code = sent_code(conn, database_url)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    reasons = [verify(client, wrong)["reason"] for _ in range(5)]
    assert reasons == ["invalid_code"] * 4 + ["too_many_attempts"]
    assert verify(client, code) == {"ok": False, "reason": "no_code"}


def test_a_resend_invalidates_the_previous_code(client, conn, database_url):
    request_code(client)
    first = sent_code(conn, database_url)
    request_code(client)
    second = sent_code(conn, database_url)
    if first != second:
        assert verify(client, first) == {"ok": False, "reason": "invalid_code"}
    assert verify(client, second)["ok"]
    states = sorted(r[0] for r in conn.execute("SELECT state FROM otp.codes"))
    assert states == ["superseded", "used"]


def test_a_code_belongs_to_the_client_that_asked_for_it(client, conn, database_url):
    request_code(client)
    code = sent_code(conn, database_url)
    assert verify(client, code, secret=PARTNER) == {"ok": False, "reason": "no_code"}


def test_document_access_only_to_a_number_in_mbg(client, conn):
    # Outside MBG the answer is the same, but nothing is sent (tests/workers/ingest/test_client_api_guards.py).
    suppressed = request_code(client, purpose="document_access", phone=OTHER_PHONE)
    assert suppressed.status_code == 202
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (0,)
    conn.execute("INSERT INTO mbg.subscribers VALUES (%s, %s)", (OTHER_PHONE, IIN))
    assert request_code(client, purpose="document_access", phone=OTHER_PHONE).status_code == 202
    assert conn.execute("SELECT recipient FROM outbound").fetchall() == [(OTHER_PHONE,)]


@pytest.mark.parametrize(("fields", "error"), [
    ({"iin": "880102300453"}, "iin_invalid"), ({"purpose": "lottery"}, "unknown_purpose"),
    ({"phone": "call me"}, "phone_invalid"),
])
def test_bad_code_requests_are_refused(client, fields, error):
    body = {"phone": PHONE, "purpose": "link_number", "iin": IIN, **fields}
    response = client.post("/v1/otp", json=body, headers=auth())
    assert response.status_code == 422 and response.json()["detail"] == {"error": error}


def test_per_phone_rate_limit(client):
    statuses = [request_code(client).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    assert request_code(client, phone=OTHER_PHONE).status_code == 202


def test_per_client_rate_limit(api_settings, conn, clock):
    strict = api_settings.model_copy(update={"otp_per_client": 2})
    limits = redis.Redis.from_url(strict.redis_url)
    for key in limits.scan_iter("govsms:rate:*"):
        limits.delete(key)
    with TestClient(create_app(strict, clock=clock)) as test_client:
        phones = [f"+7701000000{n}" for n in range(3)]
        statuses = [request_code(test_client, phone=p).status_code for p in phones]
        refused = request_code(test_client, phone="+77010000009")
        # The partner has a budget of its own: the portal's use does not block it.
        partner = request_code(test_client, phone="+77010000008", secret=PARTNER,
                               purpose="document_access")
    assert statuses == [202, 202, 429]
    assert int(refused.headers["Retry-After"]) > 0
    assert partner.status_code == 202


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": f"Basic {PORTAL}"},
                                     {"X-Bridge-Token": SECRET}])
def test_the_client_api_needs_a_client_secret(client, headers):
    for path, body in (("/v1/otp", {"phone": PHONE, "purpose": "link_number", "iin": IIN}),
                       ("/v1/otp/verify", {"phone": PHONE, "code": "123456"}),
                       ("/v1/messages/outbound", {"to": PHONE, "text": "x", "sender": "1414"})):
        assert client.post(path, json=body, headers=headers).status_code == 401


def test_outbound_only_from_the_clients_own_sender_ids(client, conn):
    ok = client.post("/v1/messages/outbound", headers=auth(PARTNER),
                     json={"to": PHONE, "text": "Podpishite dogovor: https://x.kz/s/abc",
                           "sender": "3344"})
    assert ok.status_code == 202
    for secret, sender in ((PARTNER, "1414"), (PORTAL, "3344"), (PARTNER, "EGOV")):
        refused = client.post("/v1/messages/outbound", headers=auth(secret),
                              json={"to": PHONE, "text": "x", "sender": sender})
        assert refused.status_code == 403
    row = conn.execute("SELECT sender, recipient, client, state FROM outbound").fetchall()
    assert row == [("3344", PHONE, "partner", "queued")]


def test_an_idempotency_key_sends_once(client, conn):
    body = {"to": PHONE, "text": "Vash dokument gotov", "sender": "EGOV"}
    headers = {**auth(), "Idempotency-Key": "order-42"}
    first = client.post("/v1/messages/outbound", json=body, headers=headers).json()
    second = client.post("/v1/messages/outbound", json=body, headers=headers).json()
    assert second == {"id": first["id"], "parts": 1, "duplicate": True}
    assert first["duplicate"] is False
    other = client.post("/v1/messages/outbound", json=body, headers=auth(PARTNER) | {
        "Idempotency-Key": "order-42"})
    assert other.status_code == 403  # the partner may not send as EGOV, key or no key
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (1,)


def test_portal_records_a_password_change(client, conn):
    accounts.create(conn, username="an.nguyen.0001", phone="+84905000001", id_number="123456789",
                    full_name="Nguyen Van An", birth_date=dt.date(1990, 2, 1), password_hash="x",
                    now=T0)
    path = "/v1/accounts/an.nguyen.0001/password-changed"
    assert client.post(path, headers=auth(PARTNER)).status_code == 403
    assert client.post(path).status_code == 401
    assert client.post(path, headers=auth()).json() == {"ok": True}
    assert client.post("/v1/accounts/nobody/password-changed", headers=auth()).status_code == 404
    assert conn.execute("SELECT password_changed_at, password_hash FROM accounts.citizens"
                        ).fetchone() == (T0, None)


def test_admin_cli_records_a_password_change(conn, database_url, monkeypatch):
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    accounts.create(conn, username="an.nguyen.0001", phone="+84905000001", id_number="123456789",
                    full_name="Nguyen Van An", birth_date=dt.date(1990, 2, 1), password_hash="x",
                    now=T0)
    done = CliRunner().invoke(main, ["accounts", "password-changed", "an.nguyen.0001"])
    assert done.exit_code == 0, done.output
    assert CliRunner().invoke(main, ["accounts", "password-changed", "nobody"]).exit_code == 1
    changed, = conn.execute("SELECT password_changed_at FROM accounts.citizens").fetchone()
    assert changed is not None


def test_every_8188_message_is_recorded_with_its_fee(client, conn, database_url, monkeypatch):
    def post(to: str, n: int) -> None:
        client.post("/v1/messages/inbound", headers={"X-Bridge-Token": SECRET},
                    json={"from": "0905123456", "to": to, "text": "TK", "id": f"fee-{n}"})

    for n in range(3):
        post("8188", n)
    post("8188", 0)  # a repeat is one message, charged once
    post("1414", 9)
    assert conn.execute("SELECT shortcode, tariff_amount, tariff_currency FROM inbound ORDER BY id"
                        ).fetchall() == [("8188", 1500, "VND")] * 3 + [("1414", None, None)]
    # 23:30 UTC on the 21st is already the 22nd in Da Nang (UTC+7).
    conn.execute("UPDATE inbound SET received_at = '2026-11-21 23:30+00' WHERE external_id = 'fee-2'")
    conn.execute("UPDATE inbound SET received_at = '2026-11-22 17:30+00' WHERE external_id = 'fee-1'")
    conn.execute("UPDATE inbound SET received_at = '2026-11-22 10:00+00' WHERE external_id = 'fee-0'")
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    report = CliRunner().invoke(main, ["report", "fees", "--day", "2026-11-22"])
    assert report.exit_code == 0, report.output
    assert report.output.strip() == "2026-11-22 8188: 2 messages, 3,000 VND"
    start = dt.datetime(2026, 11, 23, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    assert messages.fees(conn, "8188", start, start + dt.timedelta(days=1)) == (1, 1500, "VND")
