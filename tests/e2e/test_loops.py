"""No reply loops, no floods, no replies to what is not a person: the gateway against an
SMSC whose phones answer every SMS with another MO (an auto-responder), end to end over
SMPP with real workers, the limits as a deployment sets them."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import psycopg
import pytest

from replies import encoding
from tests.support.gateway import Gateway, wait_for
from tests.support.peers.smsc import Smsc, Submit, running_smsc, smpp_gateway

pytestmark = pytest.mark.e2e

LIMIT = 3
SAME, COUNTING, CITIZEN = "77010000101", "77010000102", "77011234567"
TOO_MANY = "Slishkom mnogo zaprosov s Vashego nomera. Otvety priostanovleny, povtorite pozzhe."
_notes = itertools.count(1)


def auto_responder(submit: Submit) -> str | None:
    """Two bots: one answers every SMS with the same text, one with a new text each time."""
    if submit.destination_addr == SAME:
        return "I am out of office until Monday."
    if submit.destination_addr == COUNTING:
        return f"Auto reply, note {'abcdefghijklmnopqrstuvwxyz'[next(_notes) % 26]}."
    return None


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    yield from running_smsc(auto_reply=auto_responder)


@pytest.fixture
def gateway(smsc: Smsc, database_url: str, redis_server: str, tmp_path, conn) -> Iterator[Gateway]:
    yield from smpp_gateway(smsc, database_url, redis_server, tmp_path, flood_limit=LIMIT,
                            flood_window_s=600, repeat_window_s=60)


def to(smsc: Smsc, phone: str) -> list[Submit]:
    return [s for s in smsc.submits if s.destination_addr == phone and s.status == 0]


def reasons(conn: psycopg.Connection, sender: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT s.reason FROM suppressions s JOIN inbound i ON i.id = s.inbound_id "
        "WHERE i.sender = %s ORDER BY i.id", (sender,))]


def test_auto_responders_stop_getting_replies_a_citizen_gets_each_of_three(smsc, gateway,
                                                                             conn):
    # A citizen with three different queries in a minute: three replies.
    for text in ("hello", "4", "5 123"):
        assert smsc.deliver(CITIZEN, "1414", encoding.encode_gsm7(text), source_addr_ton=1,
                            data_coding=0) == 0
    for phone in (SAME, COUNTING):
        assert smsc.deliver(phone, "1414", encoding.encode_gsm7("hello"), source_addr_ton=1,
                            data_coding=0) == 0
    # An operator's sender id writes to the short code: recorded, never answered.
    assert smsc.deliver("BEELINE", "1414", encoding.encode_gsm7("Balans: 100 tg"),
                        source_addr_ton=5, data_coding=0) == 0
    # The counting bot: LIMIT replies, then the one saying so, then silence.
    wait_for(lambda: len(to(smsc, COUNTING)) >= LIMIT + 1, 40, "the counting bot's replies")
    wait_for(lambda: "flood" in reasons(conn, "+" + COUNTING), 20, "its next MO suppressed")
    # The same-text bot: its text answered once, then each repeat suppressed.
    wait_for(lambda: "repeat" in reasons(conn, "+" + SAME), 20, "the repeat suppressed")
    time.sleep(2)  # a loop would go on meanwhile
    counting, same = to(smsc, COUNTING), to(smsc, SAME)
    print(f"\n[loops] counting bot: {len(counting)} replies, then "
          f"{len(reasons(conn, '+' + COUNTING))} MOs suppressed; same-text bot: {len(same)} "
          f"replies; bot MOs pushed: {len(smsc.auto_replies)}")
    assert len(counting) == LIMIT + 1 and counting[-1].text == TOO_MANY
    assert len(same) == 2  # "hello", then its text once
    assert to(smsc, "BEELINE") == [] and reasons(conn, "BEELINE") == ["sender_alphanumeric"]
    # Every MO ended as one reply or one recorded suppression.
    open_, = conn.execute("SELECT count(*) FROM inbound WHERE state NOT IN "
                          "('answered', 'suppressed')").fetchone()
    assert open_ == 0
    assert len(to(smsc, CITIZEN)) == 3 and reasons(conn, "+" + CITIZEN) == []
