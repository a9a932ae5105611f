"""`govsms trace`: every kind of message the pipeline makes, found by the citizen's number
in any form or by an id, each with its timeline, and no number or IIN shown unmasked."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from click.testing import CliRunner

from replies.transports.fake import MemoryTransport
from tests.support.keys import KEY
from tests.support.personas import add_persona
from tests.support.pipeline import make_pipeline, receive
from workers import messages, pipeline
from workers.cli import main

CITIZEN, IIN = "+77019990001", "880102300452"
UNMASKED = re.compile(r"(?<![\w-])\+?\d{10,15}(?![\w-])")


@pytest.fixture
def env(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    monkeypatch.setenv("GOVSMS_SECRET_KEY", KEY)
    monkeypatch.setenv("GOVSMS_DATA_DIR", str(tmp_path))


def made(conn: psycopg.Connection, database_url: str) -> dict[str, int]:
    """One message of each kind from CITIZEN, by kind: the inbound id (an SMS's part id)."""
    add_persona(conn, phone=CITIZEN, iin=IIN, housing=17)
    p = make_pipeline(database_url)
    kinds = {"answered": "4", "not_found": "hello", "delivered": "5 " + IIN,
             "undeliverable": "Техосмотр 123ABC01", "flagged": "hello again",
             "dead": "4 " + IIN, "suppressed": "x"}
    ids = {kind: receive(conn, text, sender=CITIZEN, external_id=kind)
           for kind, text in kinds.items()}
    conn.execute("UPDATE inbound SET sender = 'BEELINE' WHERE id = %s", (ids["suppressed"],))
    try:
        live = [i for kind, i in ids.items() if kind != "dead"]
        routed = pipeline.dispatch(p, live)
        queued = list(routed.outbound)
        for service, service_ids in routed.services.items():
            queued += pipeline.answer(p, service, service_ids)
        messages.add_dead_letter(conn, task="answer", inbound_id=ids["dead"],
                                 reason="KeyError in housing_queue")
        conn.execute("UPDATE inbound SET state = 'dead' WHERE id = %s", (ids["dead"],))
        [letter] = messages.dead_letters(conn)
        _, replayed = messages.replay_dead_letter(conn, letter)
        queued += pipeline.dispatch(p, [replayed]).outbound
        queued += pipeline.answer(p, "housing_queue", [replayed])
        notice, _ = messages.add_notice(conn, key="n1", sender="EGOV", recipient=CITIZEN,
                                        client="portal", parts=pipeline.to_parts("Gotovo"),
                                        deadline=letter.created_at)
        pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [*queued, *notice])
    finally:
        p.pool.close()
    part = {kind: conn.execute("SELECT id FROM outbound WHERE inbound_id = %s",
                               (ids[kind],)).fetchone()[0]
            for kind in ("delivered", "undeliverable", "flagged")}
    messages.record_deliveries(conn, [(part["delivered"], "delivered"),
                                      (part["undeliverable"], "undeliverable")])
    conn.execute("UPDATE outbound SET possible_duplicate = true, attempts = 2 WHERE id = %s",
                 (part["flagged"],))
    return {**ids, "replayed": replayed, "notice": notice[0]}


def trace(*args: str) -> str:
    result = CliRunner().invoke(main, ["trace", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("kind", "shows"), [
    ("answered", [r"parsed: housing_queue \{'iin': None\}", r"Ochered' na zhil'e: IIN 8801\*\*\*0452",
                  r"\[sent\]", r"received -> sent \d+\.\d{3} s"]),
    ("not_found", [r"parsed: no service: service_not_found", r"Servis ne naiden"]),
    ("delivered", [r"kindergarten_queue \{'child_iin': '8801\*\*\*0452'\}",
                   r"receipt delivered", r"received -> delivered \d+\.\d{3} s"]),
    ("undeliverable", [r"tech_inspection \{'plate': '123\*\*\*01'\}", "receipt undeliverable",
                       r"received -> delivered -"]),
    ("flagged", ["2 attempts", "POSSIBLE DUPLICATE"]),
    ("dead", [r"dead letter \d+ \(answer\): KeyError in housing_queue; replayed .* as inbound",
              r"\[dead\]"]),
    ("replayed", [r"via replay \(id dead-letter:\d+\)", r"\[answered\]"]),
])
def test_each_kind_has_its_timeline(conn, database_url, env, kind, shows):
    ids = made(conn, database_url)
    text = trace("--inbound", str(ids[kind]))
    assert text.startswith(f"inbound {ids[kind]} ")
    for pattern in shows:
        assert re.search(pattern, text), (pattern, text)
    assert UNMASKED.findall(text) == [] and IIN not in text and "ABC" not in text


def test_a_phone_in_any_form_finds_all_its_messages(conn, database_url, env):
    ids = made(conn, database_url)
    for form in ("87019990001", "+7 701 999 0001", "8 (701) 999-00-01"):
        items = json.loads(trace(form, "--json"))
        found = {item["id"] for item in items}
        assert found == {i for kind, i in ids.items() if kind != "suppressed"}, form
    text = trace("+77019990001")
    assert "sms " in text and "client portal" in text and UNMASKED.findall(text) == []
    assert "(the client's text, 6 characters)" in text and "Gotovo" not in text
    # By the part of a reply, and by the bridge's id on its link.
    part = messages.client_parts(conn, "portal", first=ids["notice"])[0]["id"]
    assert trace("--outbound", str(part)).startswith(f"sms {ids['notice']} ")
    assert trace("--external", "test:answered").startswith(f"inbound {ids['answered']} ")


def test_a_suppressed_and_a_purged_message_say_so(conn, database_url, env):
    ids = made(conn, database_url)
    assert "suppressed: sender_alphanumeric (no reply, by design)" in trace(
        "--inbound", str(ids["suppressed"]))
    assert CliRunner().invoke(main, ["purge", "--older-than", "0s"]).exit_code == 0
    text = trace("87019990001")  # found through its number's digest
    assert text.count("(purged)") >= 6 and "parsed:" not in text and UNMASKED.findall(text) == []


def test_one_query_at_a_time_and_a_number_it_knows():
    assert CliRunner().invoke(main, ["trace"]).exit_code == 2
    assert CliRunner().invoke(main, ["trace", "+77019990001", "--inbound", "1"]).exit_code == 2
    assert CliRunner().invoke(main, ["trace", "--external", "nolink"]).exit_code == 2
