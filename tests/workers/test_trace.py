"""`govsms trace`: every kind of message the pipeline makes, found by the citizen's number
in any form or by an id, each with its timeline, and no number or IIN shown unmasked."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from tests.support.keys import KEY
from tests.support.traces import IIN, UNMASKED, made
from workers import audit, messages
from workers.cli import main


@pytest.fixture
def env(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    monkeypatch.setenv("GOVSMS_SECRET_KEY", KEY)
    monkeypatch.setenv("GOVSMS_DATA_DIR", str(tmp_path))


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


def test_each_search_is_written_to_the_audit_trail_without_the_number(conn, database_url,
                                                                       env):
    ids = made(conn, database_url)
    trace("8 (701) 999-00-01")
    trace("--inbound", str(ids["answered"]))
    by_id, by_phone = audit.entries(conn)
    assert (by_phone.action, by_id.action) == ("search", "search")
    assert by_phone.operator.startswith("cli:")
    assert by_phone.asked.startswith("phone +7701***0001 since ")
    assert by_phone.phone_masked == "+7701***0001" and len(by_phone.phone_digest) == 32
    assert (by_id.asked, by_id.phone_digest) == (f"inbound {ids['answered']}", None)
    assert "9990001" not in repr(audit.entries(conn))
