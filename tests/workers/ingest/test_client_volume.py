"""SMS pumping, seen: each API client's day against its quota, what was refused it, and
an alert when its volume jumps far above its usual rate; through the real ingest app on
PostgreSQL and Redis, read from /metrics and `govsms status`."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import redis
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client_api import PARTNER, PORTAL, auth
from workers.cli import main
from workers.ingest.http import create_app
from workers.settings import ApiClient, Settings
from workers.status import REFUSED_KEY, VOLUME_FLOOR, VOLUME_JUMP

FLOOD = int(VOLUME_FLOOR * VOLUME_JUMP)  # parts in an hour that a quiet client's alert needs
SENT = 20  # of them through the API; the rest written as those were


@pytest.fixture
def configured(settings: Settings, conn) -> Settings:
    redis.Redis.from_url(settings.redis_url).delete(REFUSED_KEY)
    return settings.model_copy(update={"api_clients": {
        "portal": ApiClient(secret=PORTAL, senders=["EGOV"], messages_per_day=100_000,
                            parts_per_day=100_000),
        "partner": ApiClient(secret=PARTNER, senders=["3344"])}})


def series(client: TestClient) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("govsms_client_")}


def test_a_flood_from_one_client_raises_its_alert_and_not_the_others(configured, conn,
                                                                      monkeypatch, tmp_path):
    today = dt.datetime.now(dt.UTC).date()
    # The portal's usual week: 240 parts a day, 10 an hour.
    for days in range(1, 8):
        conn.execute("INSERT INTO api.usage (client, day, messages, parts) VALUES "
                     "('portal', %s, 240, 240)", (today - dt.timedelta(days=days),))
    with TestClient(create_app(configured)) as client:
        for n in range(SENT):
            response = client.post("/v1/messages/outbound", headers=auth(PORTAL) | {
                "Idempotency-Key": f"flood-{n}"}, json={
                "to": f"+7701{n:07d}", "text": "Vash kod: 1234", "sender": "EGOV"})
            assert response.status_code == 202, response.text
        # The rest of the hour's flood, as those requests left it in the store.
        conn.execute("""
            INSERT INTO outbound (sender, recipient, text, state, deadline, client, dedupe_key)
            SELECT 'EGOV', '+7701' || lpad(n::text, 7, '0'), 'Vash kod: 1234', 'sent', now(),
                   'portal', 'synthetic-' || n FROM generate_series(%s::int, %s::int) AS n""",
                     (SENT, FLOOD - 1))
        conn.execute("UPDATE api.usage SET messages = %s, parts = %s WHERE day = %s",
                     (FLOOD, FLOOD, today))
        for to in ("+447911123456", "+77172123456", "12"):  # abroad, a landline, no number
            assert client.post("/v1/messages/outbound", headers=auth(PARTNER), json={
                "to": to, "text": "x", "sender": "3344"}).status_code == 422
        seen = series(client)
    assert seen[("govsms_client_volume_jump", (("client", "portal"),))] == 1
    assert seen[("govsms_client_volume_jump", (("client", "partner"),))] == 0
    assert seen[("govsms_client_volume_ratio", (("client", "portal"),))] == FLOOD / VOLUME_FLOOR
    assert seen[("govsms_client_messages_today", (("client", "portal"),))] == FLOOD
    assert seen[("govsms_client_quota_messages", (("client", "partner"),))] == 5000
    refused = {labels: value for (name, labels), value in seen.items()
               if name == "govsms_client_refused_total"}
    assert refused == {(("client", "partner"), ("reason", "country_not_allowed")): 1,
                       (("client", "partner"), ("reason", "not_mobile")): 1,
                       (("client", "partner"), ("reason", "phone_invalid")): 1}

    # The operator's status shows the same, per client.
    for name, value in (("DATABASE_URL", configured.database_url),
                        ("REDIS_URL", configured.redis_url), ("DATA_DIR", str(tmp_path)),
                        ("API_CLIENTS", json.dumps({
                            name: {**c.model_dump(exclude={"secret"}),
                                   "secret": c.secret.get_secret_value()}
                            for name, c in configured.api_clients.items()}))):
        monkeypatch.setenv(f"GOVSMS_{name}", value)
    monkeypatch.setattr("workers.status.workers_alive", lambda app, timeout_s=1.0: [])
    shown = CliRunner().invoke(main, ["status"])
    assert shown.exit_code == 0, shown.output
    assert re.search(rf"client portal: {FLOOD:,} of 100,000 messages .* last hour "
                     rf"{FLOOD:,} parts, 10\.0x its usual  ALERT", shown.output)
    assert re.search(r"client partner: 0 of 5,000 messages .*refused: country_not_allowed 1, "
                     r"not_mobile 1, phone_invalid 1; last hour 0 parts, 0\.0x its usual\n",
                     shown.output)
