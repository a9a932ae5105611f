"""The SMPP ingest: deliver_sm from a real SMPP server (smpp34) to the two callables."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from replies import encoding
from replies.transports import Sms
from replies.transports.smpp.config import SmppConfig
from replies.transports.smpp.transport import SmppTransport
from tests.support.gateway import wait_for
from tests.support.peers.smsc import Smsc, running_smsc, smpp34
from workers.ingest.smpp import SmppReceiver

RX_T_APPN = 0x64
ROK = 0
RECEIPT = 0x04
UDHI = 0x40


@dataclass
class Door:
    """Records what the receiver hands over; fails while `failing` is set."""

    messages: list[tuple[str, str, str, str]] = field(default_factory=list)
    receipts: list[tuple[str, str]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)   # external ids offered, taken or not
    dead: list[str] = field(default_factory=list)       # reasons of the dead letters kept
    failing: bool = False
    dead_failing: bool = False

    def on_message(self, sender: str, shortcode: str, text: str, external_id: str) -> None:
        self.attempts.append(external_id)
        if self.failing:
            raise RuntimeError("message store unavailable")
        self.messages.append((sender, shortcode, text, external_id))

    def on_receipt(self, message_id: str, state: str) -> None:
        if self.failing:
            raise RuntimeError("message store unavailable")
        self.receipts.append((message_id, state))

    def on_dead_letter(self, reason: str) -> None:
        if self.dead_failing:
            raise RuntimeError("message store unavailable")
        self.dead.append(reason)


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    yield from running_smsc()


@pytest.fixture
def door() -> Door:
    return Door()


@pytest.fixture
def receiver(smsc: Smsc, door: Door) -> Iterator[SmppReceiver]:
    rx = SmppReceiver(door.on_message, door.on_receipt, part_timeout_s=0.5,
                      on_dead_letter=door.on_dead_letter)
    # Transceiver: smpp34 1.5.0 refuses a receiver's deliver_sm_resp (generic_nack
    # ESME_RINVCMDID, and waits on), though SMPP 3.4 table 2-1 allows it; see the test below.
    config = SmppConfig.from_url(f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}?mode=transceiver")
    stop = threading.Event()
    thread = threading.Thread(target=rx.run, args=(config, stop), kwargs={"step_s": 0.05},
                              daemon=True)
    thread.start()
    smsc.wait_for_receiver()
    yield rx
    stop.set()
    thread.join(10)


def _mo(smsc: Smsc, payload: bytes, data_coding: int = 0, esm_class: int = 0, **fields) -> int:
    return smsc.deliver("77011234567", "1414", payload, source_addr_ton=1,
                        data_coding=data_coding, esm_class=esm_class, **fields)


@pytest.mark.parametrize(("payload", "data_coding", "text"), [
    (encoding.encode_gsm7("Techosmotr 123ABC01"), 0, "Techosmotr 123ABC01"),
    (encoding.encode_gsm7("Ceny v €, [skobki]"), 0, "Ceny v €, [skobki]"),
    ("Очередь на жилье".encode("utf-16-be"), 8, "Очередь на жилье"),
    ("Тұрғын үйге кезек".encode("utf-16-be"), 8, "Тұрғын үйге кезек"),
])
def test_a_single_mo_reaches_on_message(smsc, door, receiver, payload, data_coding, text):
    assert _mo(smsc, payload, data_coding) == 0
    [(sender, shortcode, got, external_id)] = door.messages
    assert (sender, shortcode, got) == ("+77011234567", "1414", text)
    assert external_id.startswith("smpp-")
    assert smsc.binds[0][0] == "govsms-rx" and smsc.binds[0][2] is True


@pytest.mark.parametrize(("text", "coding"), [
    ("Бала-бақшаға кезек 210601503018, " * 3, "ucs2"),
    ("Ochered' v detsad 210601503018 " * 6, "gsm7"),
])
def test_a_two_part_mo_is_joined(smsc, door, receiver, text, coding):
    parts = encoding.split(text).parts
    assert len(parts) == 2
    data_coding = encoding.DATA_CODING[coding]
    for n, part in enumerate(parts, 1):
        udh = encoding.concat_udh(0x5A, 2, n)
        assert _mo(smsc, udh + encoding.encode(part, coding), data_coding, UDHI) == 0
        assert len(door.messages) == n - 1     # nothing handed over before the last part
    [(_, _, got, _)] = door.messages
    assert got == text


def test_parts_arriving_out_of_order_are_joined_in_order(smsc, door, receiver):
    for n, part in [(2, "world"), (1, "hello ")]:
        _mo(smsc, encoding.concat_udh(7, 2, n) + encoding.encode_gsm7(part), 0, UDHI)
    assert [m[2] for m in door.messages] == ["hello world"]


def test_an_mo_missing_a_part_is_handed_over_after_the_timeout(smsc, door, receiver):
    _mo(smsc, encoding.concat_udh(9, 3, 1) + encoding.encode_gsm7("Ochered' "), 0, UDHI)
    _mo(smsc, encoding.concat_udh(9, 3, 3) + encoding.encode_gsm7("detsad"), 0, UDHI)
    assert door.messages == []
    wait_for(lambda: door.messages, 5, "the incomplete MO")
    assert [m[2] for m in door.messages] == ["Ochered' detsad"]


@pytest.mark.parametrize(("text", "state"), [
    (("id:0A1B2C3D sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 "
     "stat:DELIVRD err:000 text:Servis ne naiden"), "delivered"),
    (("id:0A1B2C3D sub:001 dlvrd:000 submit date:2501011200 done date:2501021200 "
     "stat:EXPIRED err:000 text:"), "expired"),
    (("id:0A1B2C3D sub:001 dlvrd:000 submit date:2501011200 done date:2501011201 "
     "stat:UNDELIV err:001 text:"), "undeliverable"),
    ("id:0A1B2C3D stat:REJECTD", "rejected"),
])
def test_a_delivery_receipt_text_reaches_on_receipt(smsc, door, receiver, text, state):
    assert _mo(smsc, text.encode(), 0, RECEIPT) == 0
    assert door.receipts == [("0A1B2C3D", state)]
    assert door.messages == []


def test_a_delivery_receipt_by_tlvs(smsc, door, receiver):
    tlvs = [smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, b"00000007\x00"),
            smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, b"\x05")]
    assert _mo(smsc, b"", 0, RECEIPT, tlvs=tlvs) == 0
    assert door.receipts == [("00000007", "undeliverable")]


def test_a_failing_callable_makes_the_smsc_deliver_again_under_the_same_id(smsc, door, receiver):
    door.failing = True
    assert _mo(smsc, encoding.encode_gsm7("4")) == RX_T_APPN
    assert _mo(smsc, b"id:77 stat:DELIVRD", 0, RECEIPT) == RX_T_APPN
    door.failing = False
    assert _mo(smsc, encoding.encode_gsm7("4")) == 0     # the SMSC's redelivery
    assert _mo(smsc, encoding.encode_gsm7("4")) == 0     # a new message with the same text
    failed, redelivered, new = door.attempts
    assert redelivered == failed      # so the ingest records it once
    assert new != failed
    assert [m[2] for m in door.messages] == ["4", "4"]
    assert door.receipts == []


def test_a_failed_last_part_finds_its_other_parts_again(smsc, door, receiver):
    first = encoding.concat_udh(3, 2, 1) + encoding.encode_gsm7("Bala-bakshaga ")
    last = encoding.concat_udh(3, 2, 2) + encoding.encode_gsm7("kezek")
    assert _mo(smsc, first, 0, UDHI) == 0
    door.failing = True
    assert _mo(smsc, last, 0, UDHI) == RX_T_APPN
    door.failing = False
    assert _mo(smsc, last, 0, UDHI) == 0
    assert [m[2] for m in door.messages] == ["Bala-bakshaga kezek"]


def test_a_receiver_bind_takes_mo(smsc, door):
    rx = SmppReceiver(door.on_message, door.on_receipt)
    config = SmppConfig.from_url(f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}?mode=receiver")
    stop = threading.Event()
    thread = threading.Thread(target=rx.run, args=(config, stop), kwargs={"step_s": 0.05},
                              daemon=True)
    thread.start()
    try:
        with pytest.raises(TimeoutError):   # smpp34 never takes a receiver's deliver_sm_resp
            smsc.deliver("77011234567", "1414", encoding.encode_gsm7("hello"), timeout=1)
        assert [m[2] for m in door.messages] == ["hello"]
        assert smsc.binds[0][2] is True
    finally:
        stop.set()
        thread.join(10)


def test_one_transceiver_bind_sends_and_receives(smsc, door):
    rx = SmppReceiver(door.on_message, door.on_receipt)
    transport = SmppTransport(SmppConfig.from_url(
        f"smpp://govsms:pw@127.0.0.1:{smsc.port}?mode=transceiver&tps=100"), on_deliver=rx.handle)
    transport.send(Sms(1, None, "1414", "+77011234567", "Servis ne naiden."))
    assert _mo(smsc, encoding.encode_gsm7("hello")) == 0
    assert [m[2] for m in door.messages] == ["hello"]
    assert len(smsc.binds) == 1
    transport.close()


def test_a_transceiver_without_a_receiver_refuses_deliveries_for_later(smsc):
    transport = SmppTransport(SmppConfig.from_url(
        f"smpp://govsms:pw@127.0.0.1:{smsc.port}?mode=transceiver&tps=100"))
    transport.send(Sms(1, None, "1414", "+77011234567", "x"))
    assert _mo(smsc, encoding.encode_gsm7("hello")) == RX_T_APPN
    transport.close()



# --- hostile deliver_sm: taken as a dead letter, never refused for ever --------------------

@pytest.mark.parametrize(("payload", "what"), [
    (b"\x05\x00\x03\x07", "UDH longer than the message"),
    (b"\x05\x00\x03\x07\x02", "UDH longer than the message"),
    (b"\x03\x00\x05\x07hello", "an element overrunning the UDH"),
    (b"\x05\x00\x03\x07\x02\x00hello", "part 0"),
    (b"\x05\x00\x03\x07\x02\x03hello", "part 3 of 2"),
])
def test_a_truncated_or_inconsistent_udh_is_taken_as_a_dead_letter(smsc, door, receiver,
                                                                     payload, what):
    for _ in range(3):   # the SMSC's redeliveries, had it been refused
        assert _mo(smsc, payload, 0, UDHI) == ROK, what
        if door.dead:
            break
    assert len(door.dead) == 1 and "UDH" in door.dead[0]
    assert "+7701***4567" in door.dead[0] and "77011234567" not in door.dead[0]
    assert door.messages == [] and door.attempts == []
    assert receiver.refused == 1


@pytest.mark.parametrize("source", ["", "7701\x01234567", "\x1b[31m"])
def test_an_empty_or_control_character_sender_is_taken_as_a_dead_letter(smsc, door, receiver,
                                                                         source):
    status = smsc.deliver(source, "1414", encoding.encode_gsm7("hello"), source_addr_ton=1)
    assert status == ROK
    [reason] = door.dead
    assert "sender" in reason and "\x1b" not in reason and "\x01" not in reason
    assert door.attempts == []


def test_255_parts_over_the_length_limit_are_one_dead_letter(smsc, door, receiver):
    part = encoding.encode("Ж" * 67, "ucs2")      # 255 x 67 characters: over 10,000
    statuses = [_mo(smsc, encoding.concat_udh(0x42, 255, n) + part, 8, UDHI)
                for n in range(1, 256)]
    assert set(statuses) == {ROK}
    assert len(door.dead) == 1 and "long" in door.dead[0]
    assert door.attempts == [] and receiver.waiting == 0


def test_a_dead_letter_that_cannot_be_kept_is_refused_for_later(smsc, door, receiver):
    door.dead_failing = True
    assert _mo(smsc, b"\x05\x00\x03\x07", 0, UDHI) == RX_T_APPN
    door.dead_failing = False
    assert _mo(smsc, b"\x05\x00\x03\x07", 0, UDHI) == ROK
    assert len(door.dead) == 1


def test_a_message_the_door_finds_invalid_is_a_dead_letter_not_a_retry(smsc, door):
    def invalid(sender: str, shortcode: str, text: str, external_id: str) -> None:
        door.attempts.append(external_id)
        raise ValueError("text too long")    # the ingest's validation (pydantic: a ValueError)

    rx = SmppReceiver(invalid, door.on_receipt, on_dead_letter=door.on_dead_letter)
    assert rx.handle(_pdu(encoding.encode_gsm7("hello"))) == ROK
    assert len(door.attempts) == 1 and len(door.dead) == 1
    assert "text too long" in door.dead[0]


# --- the parts waiting: bounded in count and age (a frozen clock, no SMSC) -----------------

class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pdu(payload: bytes, *, source: str = "77011234567", esm_class: int = 0,
         data_coding: int = 0) -> SimpleNamespace:
    """A deliver_sm as smpplib parses it (the receiver reads only these attributes)."""
    return SimpleNamespace(source_addr=source.encode(), source_addr_ton=1,
                           destination_addr=b"1414", esm_class=esm_class,
                           data_coding=data_coding, short_message=payload)


def _first_part(reference: int, source: str = "77011234567") -> SimpleNamespace:
    return _pdu(encoding.concat_udh(reference, 2, 1) + encoding.encode_gsm7("part one "),
                source=source, esm_class=UDHI)


def test_the_oldest_incomplete_mo_is_dropped_past_the_count_bound(door, caplog):
    clock = Clock()
    rx = SmppReceiver(door.on_message, door.on_receipt, max_waiting=3, clock=clock)
    for n in range(5):
        clock.now += 1
        assert rx.handle(_first_part(n, source=f"7701123{n:04d}")) == ROK
    assert rx.waiting == 3 and rx.dropped == 2
    # The newest three are the ones kept: their second parts still complete them.
    second = encoding.concat_udh(4, 2, 2) + encoding.encode_gsm7("two")
    assert rx.handle(_pdu(second, source="77011230004", esm_class=UDHI)) == ROK
    assert [m[2] for m in door.messages] == ["part one two"]
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and "+7701***0000" in dropped[0]
    assert not any("77011230000" in r.getMessage() for r in caplog.records)


def test_an_incomplete_mo_that_cannot_be_handed_over_is_dropped_at_its_age_bound(door, caplog):
    clock = Clock()
    rx = SmppReceiver(door.on_message, door.on_receipt, part_timeout_s=60, max_age_s=600,
                      clock=clock)
    rx.handle(_first_part(1))
    door.failing = True
    with caplog.at_level(logging.WARNING):
        for _ in range(9):           # the store down: kept and tried again on every tick
            clock.now += 60
            rx.flush()
        assert rx.waiting == 1 and rx.dropped == 0
        clock.now += 61              # past 600 s since its first part
        rx.flush()
    assert rx.waiting == 0 and rx.dropped == 1
    assert any("dropped" in r.getMessage() and "+7701***4567" in r.getMessage()
               for r in caplog.records)


def test_messages_whose_callable_failed_are_remembered_within_the_count_bound(door):
    rx = SmppReceiver(door.on_message, door.on_receipt, max_waiting=2)
    door.failing = True
    for n in range(4):
        assert rx.handle(_pdu(encoding.encode_gsm7(f"text {n}"))) == RX_T_APPN
    assert len(rx._failed) == 2


def test_the_smpp_ingest_process_takes_mos_receipts_and_dead_letters_into_the_store(
        smsc, settings, conn):
    import redis

    from workers.ingest import smpp as smpp_ingest

    settings = settings.model_copy(update={
        "smpp_receiver": f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}?mode=transceiver"})
    broker = redis.Redis.from_url(settings.redis_url)
    queued = broker.llen("inbound")
    stop = threading.Event()
    thread = threading.Thread(target=smpp_ingest.run, args=(settings, settings.database_url, stop),
                              daemon=True)
    thread.start()
    try:
        smsc.wait_for_receiver()
        assert _mo(smsc, encoding.encode_gsm7("Techosmotr 123ABC01")) == ROK
        assert _mo(smsc, b"id:0A1B2C3D stat:DELIVRD", 0, RECEIPT) == ROK
        assert smsc.deliver("", "1414", encoding.encode_gsm7("hello"), source_addr_ton=1) == ROK
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert conn.execute("SELECT source, sender, shortcode, text FROM inbound").fetchall() == [
        ("smpp", "+77011234567", "1414", "Techosmotr 123ABC01")]
    assert broker.llen("inbound") == queued + 1       # its dispatch task
    assert conn.execute("SELECT transport_id, state FROM receipts").fetchall() == [
        ("0A1B2C3D", "delivered")]
    assert conn.execute("SELECT task, inbound_id FROM dead_letters").fetchall() == [
        ("smpp-ingest", None)]


def test_an_mo_to_a_short_code_not_configured_is_a_dead_letter_as_over_http(settings, conn):
    import redis

    from workers import db
    from workers.app import create_app
    from workers.ingest.accept import Ingest
    from workers.ingest.smpp import store_callbacks

    broker = redis.Redis.from_url(settings.redis_url)
    queued = broker.llen("inbound")
    pool = db.create_pool(settings.database_url, name="test-smpp-ingest",
                          statement_timeout_ms=settings.statement_timeout_ms)
    try:
        on_message, on_receipt, on_dead_letter = store_callbacks(
            Ingest(settings, pool, create_app(settings)))
        rx = SmppReceiver(on_message, on_receipt, on_dead_letter=on_dead_letter)
        pdu = _pdu(encoding.encode_gsm7("Techosmotr 123ABC01"))
        pdu.destination_addr = b"7777"
        assert "7777" not in settings.shortcodes
        assert rx.handle(pdu) == ROK      # kept as a dead letter, so no redelivery
        assert rx.handle(_pdu(encoding.encode_gsm7("Techosmotr 123ABC01"))) == ROK
    finally:
        pool.close()
    assert conn.execute("SELECT shortcode FROM inbound").fetchall() == [("1414",)]
    assert broker.llen("inbound") == queued + 1       # the 1414 one's dispatch task only
    [(task, reason)] = conn.execute("SELECT task, reason FROM dead_letters").fetchall()
    assert task == "smpp-ingest"
    assert "to: not a configured short code (1414, 8188)" in reason and "7777" in reason
