"""The client API's guards: who may link numbers, quotas and number rules, fair code limits.

Each test builds the app for the settings it needs, on the real PostgreSQL and Redis, with
a frozen clock (the daily quota and the failure lockout follow it; Redis windows do not).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from replies import encoding
from replies.reply import Reply
from replies.templates import Templates
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
from workers.ingest.http import create_app
from workers.settings import ApiClient, Settings

OTHER_IIN = "750308403040"
CYRILLIC = "Ваш документ готов, заберите его в ЦОН. "


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_for(settings: Settings, conn, clock) -> Callable[..., TestClient]:
    """A factory: the ingest app for these settings (clients and overrides), as a context."""
    limits = redis.Redis.from_url(settings.redis_url)
    for key in limits.scan_iter("govsms:rate:*"):
        limits.delete(key)

    @contextmanager
    def make(clients: dict[str, ApiClient] | None = None, **overrides) -> Iterator[TestClient]:
        portal = ApiClient(secret=PORTAL, senders=["1414", "EGOV"], manages_accounts=True,
                           links_numbers=True)
        partner = ApiClient(secret=PARTNER, senders=["3344"])
        configured = settings.model_copy(update={
            "api_clients": clients or {"portal": portal, "partner": partner}, **overrides})
        with TestClient(create_app(configured, clock=clock)) as test_client:
            yield test_client

    return make


def code_for(client: TestClient, phone: str = PHONE, purpose: str = "link_number",
             secret: str = PORTAL, **extra):
    return client.post("/v1/otp", json={"phone": phone, "purpose": purpose, "iin": IIN, **extra},
                       headers=auth(secret))


def check(client: TestClient, code: str, phone: str = PHONE) -> dict:
    response = client.post("/v1/otp/verify", json={"phone": phone, "code": code}, headers=auth())
    assert response.status_code == 200
    return response.json()


def send(client: TestClient, text: str = "Vash dokument gotov", to: str = PHONE,
         secret: str = PORTAL, sender: str = "EGOV", key: str | None = None):
    headers = auth(secret) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/messages/outbound", json={"to": to, "text": text, "sender": sender},
                       headers=headers)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


# --- 1. linking a number -------------------------------------------------------------------

def test_linking_numbers_is_a_privilege_off_by_default():
    assert ApiClient(secret=PORTAL, senders=["1414"]).links_numbers is False


def test_a_client_without_the_privilege_gets_no_link_code(app_for, conn):
    with app_for() as client:
        refused = code_for(client, secret=PARTNER)
    assert refused.status_code == 403 and refused.json()["detail"] == {"error": "not_allowed"}
    assert conn.execute("SELECT count(*) FROM otp.codes").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (0,)


def test_the_previous_number_is_told_it_was_replaced(app_for, conn, database_url):
    conn.execute("INSERT INTO mbg.subscribers VALUES (%s, %s)", (OTHER_PHONE, IIN))
    with app_for() as client:
        assert code_for(client).status_code == 202
        assert check(client, sent_code(conn, database_url)) == {"ok": True,
                                                                 "purpose": "link_number"}
    notice = conn.execute("SELECT sender, recipient, service, outcome, sealed FROM outbound "
                          "WHERE recipient = %s", (OTHER_PHONE,)).fetchall()
    assert notice == [("1414", OTHER_PHONE, "otp", "number_replaced", False)]
    assert conn.execute("SELECT phone, iin FROM mbg.subscribers").fetchall() == [(PHONE, IIN)]


def test_the_replacement_notice_is_one_gsm7_segment_in_the_1414_register():
    text = Templates.load().render(Reply("otp", "number_replaced"))
    segmented = encoding.split(text)
    assert segmented.coding == "gsm7" and len(segmented.parts) == 1
    assert "mobilnoi baze grazhdan" in text and "egov.kz" in text


def test_a_first_link_tells_nobody(app_for, conn, database_url):
    with app_for() as client:
        code_for(client)
        assert check(client, sent_code(conn, database_url))["ok"]
    assert conn.execute("SELECT count(*) FROM outbound WHERE outcome = 'number_replaced'"
                        ).fetchone() == (0,)


def test_every_link_and_unlink_is_audited_without_a_number_in_clear(app_for, conn, database_url):
    conn.execute("INSERT INTO mbg.subscribers VALUES (%s, %s), (%s, %s)",
                 (OTHER_PHONE, IIN, PHONE, OTHER_IIN))
    with app_for() as client:
        code_for(client)
        assert check(client, sent_code(conn, database_url))["ok"]
    rows = conn.execute("SELECT at, client, action, iin_masked, iin_digest, old_phone_masked, "
                        "old_phone_digest, new_phone_masked, new_phone_digest FROM mbg.changes "
                        "ORDER BY action").fetchall()
    assert [r[:4] + (r[5], r[7]) for r in rows] == [
        (T0, "portal", "link", "8801***0452", "+7701***4321", "+7701***4567"),
        (T0, "portal", "unlink", "7503***3040", "+7701***4567", None),
    ]
    link, unlink = rows
    assert link[8] == unlink[6]  # the same number, the same keyed digest
    assert link[8] != hashlib.sha256(PHONE.encode()).hexdigest()  # keyed, not a plain hash
    assert unlink[8] is None and link[4] != unlink[4]
    for number in (PHONE, OTHER_PHONE, IIN, OTHER_IIN, PHONE[1:], IIN[2:]):
        assert not any(number in str(value) for row in rows for value in row)


def test_a_refused_check_audits_nothing(app_for, conn, database_url):
    with app_for() as client:
        code_for(client)
        assert not check(client, wrong(sent_code(conn, database_url)))["ok"]
    assert conn.execute("SELECT count(*) FROM mbg.changes").fetchone() == (0,)


# --- 2. pumping ----------------------------------------------------------------------------

@pytest.mark.parametrize(("number", "error"), [
    ("+882161234567", "country_not_allowed"),   # international networks (satellite, IoT)
    ("+449090123456", "country_not_allowed"),   # UK premium rate
    ("+74951234567", "country_not_allowed"),    # Moscow: +7, but Russia
    ("+77172123456", "not_mobile"),             # Astana fixed line
    ("+7701123", "phone_invalid"),
])
def test_outbound_only_to_mobile_numbers_of_the_configured_countries(app_for, conn, number,
                                                                      error):
    with app_for() as client:
        refused = send(client, to=number)
        code = code_for(client, phone=number)
    assert refused.status_code == 422 and refused.json()["detail"] == {"error": error}
    assert code.status_code == 422 and code.json()["detail"] == {"error": error}
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (0,)


@pytest.mark.parametrize("number", ["+77011234567", "8 777 123 45 67", "+84905123456"])
def test_mobile_numbers_of_kazakhstan_and_vietnam_are_taken(app_for, number):
    with app_for() as client:
        assert send(client, to=number).status_code == 202


def test_a_client_may_be_allowed_other_countries_but_only_mobile_numbers(app_for):
    abroad = ApiClient(secret=PORTAL, senders=["EGOV"], extra_countries=["GB"])
    with app_for({"portal": abroad}) as client:
        assert send(client, to="+447400123456").status_code == 202
        assert send(client, to="+449090123456").json()["detail"] == {"error": "not_mobile"}
        assert send(client, to="+882161234567").status_code == 422


def test_a_pumping_burst_of_long_texts_to_international_numbers_queues_nothing(app_for, conn):
    with app_for() as client:
        statuses = {send(client, text=(CYRILLIC * 40)[:1600], to=f"+88216123{n:04d}").status_code
                    for n in range(20)}
    assert statuses == {422}
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (0,)


def test_parts_per_message_are_capped(app_for, conn):
    six = (CYRILLIC * 20)[:6 * 67]
    assert len(encoding.split(six).parts) == 6 and len(encoding.split(six + "Ж").parts) == 7
    with app_for() as client:
        assert send(client, text=six).json()["parts"] == 6
        refused = send(client, text=six + "Ж")
        assert refused.status_code == 422 and refused.json()["detail"] == {
            "error": "too_many_parts"}
    with app_for(api_max_parts=2) as client:
        assert send(client, text=(CYRILLIC * 4)[:3 * 67]).status_code == 422
    assert conn.execute("SELECT count(*) FROM outbound").fetchone() == (6,)


def test_a_daily_message_quota_per_client_with_retry_after_until_midnight(app_for, clock):
    portal = ApiClient(secret=PORTAL, senders=["EGOV"], messages_per_day=2)
    partner = ApiClient(secret=PARTNER, senders=["3344"])
    with app_for({"portal": portal, "partner": partner}) as client:
        statuses = [send(client).status_code for _ in range(2)]
        refused = send(client)
        others = send(client, secret=PARTNER, sender="3344")
        clock.now = T0.replace(hour=23, minute=59, second=59)
        late = send(client)
        clock.now = T0 + dt.timedelta(days=1)
        tomorrow = send(client)
    assert statuses == [202, 202]
    assert refused.status_code == 429 and refused.json()["detail"] == {"error": "quota_exceeded"}
    assert refused.headers["Retry-After"] == str(15 * 3600)  # 09:00 UTC to midnight
    assert late.headers["Retry-After"] == "1"
    assert others.status_code == 202  # each client has its own quota
    assert tomorrow.status_code == 202


def test_a_daily_parts_quota_counts_only_what_was_taken(app_for, conn):
    two = (CYRILLIC * 5)[:100]
    assert len(encoding.split(two).parts) == 2
    with app_for(api_parts_per_day=3) as client:
        assert send(client, text=two).status_code == 202
        assert send(client, text=two).status_code == 429  # 4 parts would pass 3
        assert send(client, text="Vash dokument gotov").status_code == 202
        assert send(client, text="x").status_code == 429
    assert conn.execute("SELECT messages, parts FROM api.usage").fetchall() == [(2, 3)]


def test_the_default_daily_quota_comes_from_the_settings_and_a_client_may_override_it(app_for):
    portal = ApiClient(secret=PORTAL, senders=["EGOV"], messages_per_day=3)
    partner = ApiClient(secret=PARTNER, senders=["3344"])
    with app_for({"portal": portal, "partner": partner}, api_messages_per_day=1) as client:
        partner_statuses = [send(client, secret=PARTNER, sender="3344").status_code
                            for _ in range(2)]
        portal_statuses = [send(client).status_code for _ in range(4)]
    assert partner_statuses == [202, 429]
    assert portal_statuses == [202, 202, 202, 429]


def test_quotas_and_countries_per_client_from_the_environment(monkeypatch):
    monkeypatch.setenv("GOVSMS_API_CLIENTS", '{"partner": {"secret": "%s", "senders": ["3344"], '
                       '"messages_per_day": 50, "parts_per_day": 80, "extra_countries": ["UZ"]}}'
                       % PARTNER)
    monkeypatch.setenv("GOVSMS_API_MAX_PARTS", "4")
    s = Settings()
    partner = s.api_clients["partner"]
    assert (partner.messages_per_day, partner.parts_per_day) == (50, 80)
    assert partner.extra_countries == ["UZ"] and not partner.links_numbers
    assert s.api_max_parts == 4


def test_a_duplicate_is_not_charged_again(app_for, conn):
    with app_for(api_messages_per_day=1) as client:
        first = send(client, key="order-1")
        again = send(client, key="order-1")
    assert first.status_code == again.status_code == 202 and again.json()["duplicate"]
    assert conn.execute("SELECT messages FROM api.usage").fetchall() == [(1,)]


# --- 3. fair code limits -------------------------------------------------------------------

def test_refused_code_requests_use_up_no_limit(app_for):
    with app_for(otp_per_client=2) as client:
        bad = [code_for(client, iin="880102300453").status_code for _ in range(3)]
        good = [code_for(client, phone=p).status_code for p in (PHONE, OTHER_PHONE)]
    assert bad == [422] * 3
    assert good == [202, 202]


def test_a_phone_at_its_limit_does_not_spend_the_clients_budget(app_for):
    with app_for(otp_per_client=3, otp_per_phone=1) as client:
        first = code_for(client).status_code
        hammered = [code_for(client).status_code for _ in range(5)]
        others = [code_for(client, phone=f"+7701000000{n}").status_code for n in range(3)]
    assert first == 202 and hammered == [429] * 5
    assert others == [202, 202, 429]


def test_a_limit_per_end_user_kept_hashed(app_for, settings):
    with app_for(otp_per_user=2) as client:
        alice = [code_for(client, phone=f"+7701000000{n}", end_user="portal-session-alice"
                          ).status_code for n in range(3)]
        bob = code_for(client, phone="+77010000009", end_user="portal-session-bob").status_code
        anonymous = code_for(client, phone="+77010000008").status_code
    assert alice == [202, 202, 429]
    assert bob == 202 and anonymous == 202
    keys = b" ".join(redis.Redis.from_url(settings.redis_url).scan_iter("govsms:rate:*"))
    assert b"alice" not in keys and b"otp-user" in keys


def test_failed_checks_lock_a_phone_for_24_hours_even_with_the_right_code(app_for, conn,
                                                                          database_url, clock):
    with app_for(otp_failures_per_phone=3) as client:
        code_for(client)
        first = sent_code(conn, database_url)
        assert [check(client, wrong(first))["reason"] for _ in range(2)] == ["invalid_code"] * 2
        clock.now = T0 + dt.timedelta(minutes=1)
        code_for(client)  # a new code: its own 5 tries, but the phone's count goes on
        second = sent_code(conn, database_url)
        assert check(client, wrong(second)) == {"ok": False, "reason": "invalid_code"}
        assert check(client, second) == {"ok": False, "reason": "locked"}
        clock.now = T0 + dt.timedelta(hours=23, minutes=59)
        assert check(client, second)["reason"] == "locked"
        clock.now = T0 + dt.timedelta(hours=24, seconds=30)
        code_for(client)
        third = sent_code(conn, database_url)
        # The first two failures have aged out: one left in the window, under the limit.
        assert check(client, third) == {"ok": True, "purpose": "link_number"}
    assert conn.execute("SELECT count(*) FROM mbg.subscribers").fetchone() == (1,)


def test_a_locked_phone_does_not_count_more_failures(app_for, conn, database_url, clock):
    with app_for(otp_failures_per_phone=1) as client:
        code_for(client)
        code = sent_code(conn, database_url)
        assert check(client, wrong(code))["reason"] == "invalid_code"
        for _ in range(3):
            assert check(client, wrong(code))["reason"] == "locked"
    assert conn.execute("SELECT count(*) FROM otp.failures").fetchone() == (1,)


def test_no_answer_tells_whether_a_number_is_in_mbg(app_for, conn, database_url):
    conn.execute("INSERT INTO mbg.subscribers VALUES (%s, %s)", (OTHER_PHONE, IIN))
    with app_for() as client:
        absent = code_for(client, purpose="document_access")
        present = code_for(client, phone=OTHER_PHONE, purpose="document_access")
        assert absent.status_code == present.status_code == 202
        assert set(absent.json()) == set(present.json()) == {"id", "expires_at"}
        assert absent.json()["expires_at"] == present.json()["expires_at"]
        # A guess at the code is answered alike: the suppressed code is live, no one knows it.
        guess = wrong(sent_code(conn, database_url))
        assert check(client, guess) == check(client, guess, phone=OTHER_PHONE) == {
            "ok": False, "reason": "invalid_code"}
        limited = [code_for(client, purpose="document_access").status_code for _ in range(3)]
    assert limited == [202, 202, 429]  # counted as codes sent, like any other
    assert conn.execute("SELECT recipient FROM outbound").fetchall() == [(OTHER_PHONE,)]
    assert conn.execute("SELECT phone, suppressed FROM otp.codes ORDER BY id").fetchall() == [
        (PHONE, True), (OTHER_PHONE, False), (PHONE, True), (PHONE, True)]


# --- 4. idempotency ------------------------------------------------------------------------

def test_an_idempotency_key_reused_with_another_body_is_a_conflict(app_for, conn):
    with app_for() as client:
        first = send(client, key="order-42")
        other_text = send(client, text="Vash dokument ne gotov", key="order-42")
        other_phone = send(client, to=OTHER_PHONE, key="order-42")
        same = send(client, key="order-42")
        partner = send(client, secret=PARTNER, sender="3344", key="order-42")
    assert first.status_code == 202 and not first.json()["duplicate"]
    assert other_text.status_code == other_phone.status_code == 409
    assert other_text.json()["detail"] == {"error": "idempotency_key_reused"}
    assert same.status_code == 202 and same.json() == {"id": first.json()["id"], "parts": 1,
                                                       "duplicate": True}
    assert partner.status_code == 202 and not partner.json()["duplicate"]  # keys are per client
    assert conn.execute("SELECT recipient, text FROM outbound ORDER BY id").fetchall() == [
        (PHONE, "Vash dokument gotov"), (PHONE, "Vash dokument gotov")]
    digests = [r[0] for r in conn.execute("SELECT body_digest FROM api.idempotency")]
    assert not any("gotov" in d or PHONE in d for d in digests)


def test_the_same_number_written_otherwise_is_the_same_body(app_for):
    with app_for() as client:
        first = send(client, to="+77011234567", key="k")
        again = send(client, to="8 701 123 45 67", key="k")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]


# --- the door ------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["Bearer ", "Bearer"])
def test_an_empty_bearer_token_never_matches(app_for, header):
    # A client configured without a secret (the settings are to refuse it; built past them).
    blank = ApiClient.model_construct(secret=SecretStr(""), senders=["EGOV"],
                                      manages_accounts=True, links_numbers=True,
                                      messages_per_day=None, parts_per_day=None,
                                      extra_countries=[])
    with app_for({"blank": blank}) as client:
        response = client.post("/v1/messages/outbound", headers={"Authorization": header},
                               json={"to": PHONE, "text": "x", "sender": "EGOV"})
    assert response.status_code == 401
