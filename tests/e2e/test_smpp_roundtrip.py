"""SMPP end to end on a real SMPP server (smpp34): an MO over SMPP -> the pipeline -> the reply
over SMPP -> the SMSC's receipt updates the outbound row."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from replies import encoding
from tests.support.gateway import PORTAL_SECRET, Gateway, wait_for
from tests.support.peers.smsc import Smsc, running_smsc, smpp_gateway

pytestmark = pytest.mark.e2e
RECEIPT = 0x04
NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    yield from running_smsc()


@pytest.fixture
def gateway(smsc: Smsc, database_url: str, redis_server: str, tmp_path, conn) -> Iterator[Gateway]:
    yield from smpp_gateway(smsc, database_url, redis_server, tmp_path)


def test_an_smpp_mo_is_answered_over_smpp_and_its_receipt_recorded(smsc, gateway, conn):
    status = smsc.deliver("77011234567", "1414", encoding.encode_gsm7("hello"),
                          source_addr_ton=1, data_coding=0)
    assert status == 0
    [submit] = wait_for(lambda: [s for s in smsc.submits if s.status == 0], 30, "the reply")
    assert (submit.text, submit.data_coding, submit.destination_addr) == (NOT_FOUND, 0,
                                                                          "77011234567")
    # The SMSC has the submit before its submit_sm_resp reaches the sender, which then
    # records the part as sent: wait for that.
    row = wait_for(lambda: conn.execute(
        "SELECT i.source, i.sender, o.state, o.transport_id FROM inbound i "
        "JOIN outbound o ON o.inbound_id = i.id WHERE o.state = 'sent'").fetchone(), 10, "sent")
    assert row[:3] == ("smpp", "+77011234567", "sent")
    receipt = f"id:{row[3]} sub:001 dlvrd:001 submit date:2611220900 done date:2611220900 " \
              f"stat:DELIVRD err:000 text:"
    assert smsc.deliver("77011234567", "1414", receipt.encode(), esm_class=RECEIPT) == 0
    wait_for(lambda: conn.execute("SELECT delivery FROM outbound").fetchone() == ("delivered",),
             20, "the receipt")


def test_a_long_cyrillic_message_goes_as_concatenated_ucs2_parts(smsc, gateway, conn):
    text = "Ваш договор готов к подписанию, ссылка придёт отдельным сообщением. " * 2
    response = httpx.post(f"{gateway.settings.ingest_url}/v1/messages/outbound",
                          headers={"Authorization": f"Bearer {PORTAL_SECRET}"},
                          json={"to": "+77011234567", "text": text, "sender": "EGOV"})
    assert response.json()["parts"] == 3
    submits = wait_for(lambda: len(smsc.submits) >= 3 and smsc.submits, 30, "three parts")
    assert {s.data_coding for s in submits} == {8}
    assert [s.concat.sequence for s in submits] == [1, 2, 3]
    assert len({s.concat.reference for s in submits}) == 1
    assert "".join(s.text for s in submits) == text
