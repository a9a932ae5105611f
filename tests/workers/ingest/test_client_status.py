"""Delivery status for API clients: GET /v1/messages/outbound/{id} and GET /v1/otp/{id}, for
the client that sent it only, never the text of a message or a code; through the real ingest
app on PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.client_api import IIN, PARTNER, PHONE, PORTAL, auth, sent_code
from workers import messages
from workers.ingest.http import create_app
from workers.settings import ApiClient, Settings

TEXT = "Vash dokument gotov k vydache v CON nomer 4, " * 4  # two parts


@pytest.fixture
def client(settings: Settings, conn) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"api_clients": {
        "portal": ApiClient(secret=PORTAL, senders=["EGOV", "1414"], links_numbers=True),
        "partner": ApiClient(secret=PARTNER, senders=["3344"])}})
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def test_a_client_follows_its_message_from_queued_to_delivered(client, conn, database_url):
    sent = client.post("/v1/messages/outbound", headers=auth(PORTAL),
                       json={"to": PHONE, "text": TEXT, "sender": "EGOV"}).json()
    status = client.get(f"/v1/messages/outbound/{sent['id']}", headers=auth(PORTAL))
    assert status.status_code == 200
    queued = status.json()
    assert (queued["state"], queued["to"], queued["sender"], len(queued["parts"])) == (
        "queued", "+7701***4567", "EGOV", 2)
    sent_code_or_none(conn, database_url)
    ids = [p["id"] for p in messages.client_parts(conn, "portal", first=sent["id"])]
    after = client.get(f"/v1/messages/outbound/{sent['id']}", headers=auth(PORTAL)).json()
    assert after["state"] == "sent" and after["sent_at"] and after["delivered_at"] is None
    messages.record_deliveries(conn, [(ids[0], "delivered")])
    assert client.get(f"/v1/messages/outbound/{sent['id']}",
                      headers=auth(PORTAL)).json()["delivery"] == "partial"
    messages.record_deliveries(conn, [(ids[1], "delivered")])
    done = client.get(f"/v1/messages/outbound/{sent['id']}", headers=auth(PORTAL))
    assert done.json()["delivery"] == "delivered" and done.json()["delivered_at"]
    assert [p["delivery"] for p in done.json()["parts"]] == ["delivered", "delivered"]
    assert "CON nomer" not in done.text and "7011234567" not in done.text


def sent_code_or_none(conn, database_url) -> None:
    """Deliver what is queued, as the outbound worker would."""
    try:
        sent_code(conn, database_url)
    except AssertionError:  # no code among them: a message
        pass


def test_another_client_or_no_token_cannot_read_it(client):
    sent = client.post("/v1/messages/outbound", headers=auth(PORTAL),
                       json={"to": PHONE, "text": "x", "sender": "EGOV"}).json()
    other = client.get(f"/v1/messages/outbound/{sent['id']}", headers=auth(PARTNER))
    assert other.status_code == 404 and other.json() == {"detail": {"error": "unknown_message"}}
    assert client.get(f"/v1/messages/outbound/{sent['id']}").status_code == 401
    assert client.get("/v1/messages/outbound/999999", headers=auth(PORTAL)).status_code == 404


def test_a_code_shows_its_state_and_sms_never_the_code(client, conn, database_url):
    asked = client.post("/v1/otp", headers=auth(PORTAL), json={
        "phone": PHONE, "purpose": "link_number", "iin": IIN}).json()
    code = sent_code(conn, database_url)
    status = client.get(f"/v1/otp/{asked['id']}", headers=auth(PORTAL))
    assert status.status_code == 200
    shown = status.json()
    assert (shown["state"], shown["purpose"], shown["sms"]["state"]) == (
        "active", "link_number", "sent")
    assert code not in status.text and IIN not in status.text and "7011234567" not in status.text
    assert client.post("/v1/otp/verify", headers=auth(PORTAL),
                       json={"phone": PHONE, "code": code}).json()["ok"] is True
    assert client.get(f"/v1/otp/{asked['id']}", headers=auth(PORTAL)).json()["state"] == "used"
    assert client.get(f"/v1/otp/{asked['id']}", headers=auth(PARTNER)).status_code == 404


def test_a_document_access_code_never_tells_whether_its_sms_went(client, conn):
    # Nobody in MBG has this number: the code is recorded, never sent, answered as sent.
    asked = client.post("/v1/otp", headers=auth(PORTAL), json={
        "phone": "+77019998877", "purpose": "document_access"}).json()
    shown = client.get(f"/v1/otp/{asked['id']}", headers=auth(PORTAL)).json()
    assert shown["state"] == "active" and "sms" not in shown
