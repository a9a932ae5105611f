"""The SMPP door: a receiver (or transceiver) bind that takes deliver_sm from the SMSC.

Mobile-originated messages are decoded (data_coding 0 GSM-7, 8 UCS-2, ...),
concatenated parts joined by their UDH (or SAR TLV) reference, and each whole
message handed to `on_message(sender, shortcode, text, external_id)`. Delivery
receipts go to `on_receipt(message_id, state)`. When a callable fails for a
while (the store is down), the SMSC gets ESME_RX_T_APPN and delivers the PDU
again later. A PDU that can never be taken (a truncated UDH, no usable sender, a
text over the length limit, or one `on_message` finds invalid with a ValueError)
goes to `on_dead_letter(reason)` and is answered ESME_ROK: see `handle`. The
receiver touches no database; `run` (the `govsms smpp-ingest` process) wires the
callables to the message store with `store_callbacks`, which refuses what the HTTP door
refuses (an MO to a short code not configured: a dead letter here). What a single PDU
says (addresses, UDH, receipt) is read in smpp_pdu.py.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import smpplib.consts as c

from replies import encoding
from replies.encoding import UDHI
from replies.masking import mask_digits
from replies.transports.smpp.config import SmppConfig
from replies.transports.smpp.link import Pdu, SmppLink
from workers import db, messages
from workers.app import create_app
from workers.ingest.accept import InboundSms, Ingest, not_served
from workers.ingest.smpp_pdu import (
    Refused,
    check_concat,
    concat_of_udh,
    describe_invalid,
    parse_receipt,
    payload_of,
    pdu_field,
    printable,
    sender_of,
    shortcode_of,
    shown,
)
from workers.messages import MAX_TEXT
from workers.settings import Settings

log = logging.getLogger(__name__)

OnMessage = Callable[[str, str, str, str], None]
OnReceipt = Callable[[str, str], None]
OnDeadLetter = Callable[[str], None]

RECEIPT_TYPES = 0x04 | 0x08 | 0x10 | 0x20   # SMSC receipt, SME acks, intermediate notification


@dataclass(slots=True)
class _Pending:
    """The parts of one concatenated MO seen so far."""

    data_coding: int
    total: int
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)

    @property
    def octets(self) -> int:
        """The octets of the parts held."""
        return sum(len(part) for part in self.parts.values())


class SmppReceiver:
    """Turns deliver_sm into whole messages, receipts and dead letters for the callables.

    `handle` answers one PDU (the status for deliver_sm_resp), `flush` hands over
    concatenated messages whose missing parts did not come within `part_timeout_s`
    (what came, in order), and `run` binds and serves until stopped. At most
    `max_waiting` incomplete messages wait, none past `max_age_s`: beyond either
    bound the oldest is dropped, counted in `dropped` and logged with masked addresses.
    """

    def __init__(self, on_message: OnMessage, on_receipt: OnReceipt, *,
                 on_dead_letter: OnDeadLetter | None = None, part_timeout_s: float = 60.0,
                 retry_window_s: float = 600.0, max_waiting: int = 1000,
                 max_age_s: float = 600.0, max_text: int = MAX_TEXT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_message = on_message
        self.on_receipt = on_receipt
        self.on_dead_letter = on_dead_letter
        self.part_timeout_s = part_timeout_s
        self.retry_window_s = retry_window_s
        self.max_waiting = max_waiting
        self.max_age_s = max_age_s
        self.max_text = max_text
        self.refused = 0    # PDUs taken as dead letters
        self.dropped = 0    # incomplete messages given up at a bound
        self._clock = clock
        self._lock = threading.Lock()
        # Insertion order is arrival order: the first entry is the oldest.
        self._pending: dict[tuple[str, str, int, int], _Pending] = {}
        # Messages whose callable failed, by content, with the id they were given: the
        # SMSC's redelivery of a deliver_sm carries no id of its own, so it gets this one
        # and the ingest records it once.
        self._failed: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Incomplete concatenated messages held for their missing parts."""
        return len(self._pending)

    def handle(self, pdu: Pdu) -> int:
        """Take one deliver_sm: ESME_ROK once handed over or kept as a dead letter, else
        ESME_RX_T_APPN so the SMSC delivers it again.

        A PDU no redelivery can make acceptable is answered ESME_ROK with a dead letter,
        not ESME_RX_P_APPN: SMPP 3.4 defines the permanent code (5.1.3) but leaves what
        the SMSC does after a failed deliver_sm to its own retry policy, and an SMSC that
        retries on any non-zero status would loop on it as on the temporary one. ROK is
        the truth once the dead letter is written: the gateway has the message, where an
        operator sees it. Only if that write fails does the SMSC keep it (T_APPN).
        """
        with self._lock:
            try:
                if (pdu.esm_class or 0) & RECEIPT_TYPES:
                    return self._receipt(pdu)
                return self._mobile_originated(pdu)
            except Refused as refused:
                return self._dead_letter(str(refused),
                                         sender_of(pdu.source_addr, pdu.source_addr_ton),
                                         shortcode_of(pdu.destination_addr), pdu.data_coding or 0,
                                         payload_of(pdu), esm_class=pdu.esm_class or 0)
            except Exception:
                log.exception("deliver_sm not taken; the SMSC will deliver it again")
                return c.SMPP_ESME_RX_T_APPN

    def _receipt(self, pdu: Pdu) -> int:
        receipt = parse_receipt(pdu)
        if receipt is None:
            log.warning("delivery receipt without a message id ignored")
            return c.SMPP_ESME_ROK
        self.on_receipt(receipt.message_id, receipt.state)
        return c.SMPP_ESME_ROK

    def _mobile_originated(self, pdu: Pdu) -> int:
        sender = sender_of(pdu.source_addr, pdu.source_addr_ton)
        shortcode = shortcode_of(pdu.destination_addr)
        # Checked before any part is held: no reply could ever reach such a sender.
        if not printable(sender):
            raise Refused("no usable sender (empty, or control characters)")
        if not printable(shortcode):
            raise Refused("no usable short code (empty, or control characters)")
        payload = payload_of(pdu)
        data_coding = pdu.data_coding or 0
        concat = None
        if (pdu.esm_class or 0) & UDHI:
            concat, payload = concat_of_udh(payload)
        elif pdu_field(pdu, "sar_total_segments"):
            concat = encoding.Concat(pdu_field(pdu, "sar_msg_ref_num") or 0,
                                     pdu_field(pdu, "sar_total_segments"),
                                     pdu_field(pdu, "sar_segment_seqnum") or 1)
        if concat is not None:
            check_concat(concat)
        if concat is None or concat.total <= 1:
            self._deliver(sender, shortcode, encoding.decode(payload, data_coding))
            return c.SMPP_ESME_ROK
        key = (sender, shortcode, concat.reference, concat.total)
        pending = self._pending.get(key)
        if pending is None:
            while len(self._pending) >= self.max_waiting:
                self._drop(next(iter(self._pending)), f"over {self.max_waiting} waiting")
            pending = self._pending[key] = _Pending(data_coding, concat.total, self._clock())
        pending.parts[concat.sequence] = payload
        # A character is at most 4 octets (a UCS-2 surrogate pair): refuse more early.
        if pending.octets > 4 * self.max_text:
            del self._pending[key]
            raise Refused(f"{len(pending.parts)} of {concat.total} parts hold {pending.octets} "
                          f"octets, more than a text of {self.max_text} characters: too long")
        if len(pending.parts) < pending.total:
            return c.SMPP_ESME_ROK
        # Joined as octets before decoding: a GSM escape or surrogate pair may straddle parts.
        whole = b"".join(pending.parts[n] for n in sorted(pending.parts))
        try:
            self._deliver(sender, shortcode, encoding.decode(whole, pending.data_coding))
        except Refused:
            del self._pending[key]
            raise
        del self._pending[key]   # only once taken: a failed last part finds the others again
        return c.SMPP_ESME_ROK

    def _deliver(self, sender: str, shortcode: str, text: str) -> None:
        if len(text) > self.max_text:
            raise Refused(f"text of {len(text)} characters, over {self.max_text}: too long")
        now = self._clock()
        while self._failed and next(iter(self._failed.values()))[1] < now - self.retry_window_s:
            self._failed.popitem(last=False)
        content = hashlib.sha256(f"{sender}\0{shortcode}\0{text}".encode()).hexdigest()
        external_id, _ = self._failed.get(content, (f"smpp-{uuid.uuid4().hex}", now))
        try:
            self.on_message(sender, shortcode, text, external_id)
        except ValueError as error:   # the door's validation: the same on every redelivery
            self._failed.pop(content, None)
            raise Refused(f"the ingest refused it: {describe_invalid(error)}") from error
        except Exception:
            self._failed[content] = (external_id, self._failed.get(content, (None, now))[1])
            while len(self._failed) > self.max_waiting:
                self._failed.popitem(last=False)
            raise
        self._failed.pop(content, None)
        log.info("smpp MO from %s to %s taken as %s", mask_digits(sender), shortcode, external_id)

    def _dead_letter(self, reason: str, sender: str, shortcode: str, data_coding: int,
                     payload: bytes, *, esm_class: int = 0) -> int:
        """Keep a refused message as a dead letter: ESME_ROK once kept, else ESME_RX_T_APPN."""
        # The text stays out (it may carry a password); its digest finds it in the SMSC's logs.
        letter = (f"deliver_sm refused: {reason} (from {shown(sender)} to {shown(shortcode)}, "
                  f"data_coding {data_coding}, esm_class 0x{esm_class:02x}, {len(payload)} "
                  f"octets, sha256 {hashlib.sha256(payload).hexdigest()[:16]})")
        try:
            if self.on_dead_letter is not None:
                self.on_dead_letter(letter)
        except Exception:
            log.exception("dead letter not kept; the SMSC will deliver the PDU again")
            return c.SMPP_ESME_RX_T_APPN
        self.refused += 1
        log.warning("%s", letter)
        return c.SMPP_ESME_ROK

    def _drop(self, key: tuple[str, str, int, int], why: str) -> None:
        pending = self._pending.pop(key)
        self.dropped += 1
        sender, shortcode, reference, total = key
        log.warning("smpp MO from %s to %s ref %s dropped (%s): %d of %d parts had come, "
                    "%d given up so far", shown(sender), shown(shortcode), reference, why,
                    len(pending.parts), total, self.dropped)

    def flush(self) -> None:
        """Hand over the concatenated messages that waited too long for a part, as they are."""
        with self._lock:
            now = self._clock()
            for key, pending in list(self._pending.items()):
                if pending.first_seen > now - self.part_timeout_s:
                    continue
                sender, shortcode, reference, total = key
                whole = b"".join(pending.parts[n] for n in sorted(pending.parts))
                try:
                    self._deliver(sender, shortcode, encoding.decode(whole, pending.data_coding))
                except Refused as refused:
                    status = self._dead_letter(str(refused), sender, shortcode,
                                               pending.data_coding, whole, esm_class=UDHI)
                    if status == c.SMPP_ESME_ROK:
                        del self._pending[key]
                        continue
                except Exception:
                    log.exception("incomplete MO from %s not taken yet", shown(sender))
                else:
                    log.warning("smpp MO from %s ref %s: %d of %d parts came in %.0f s; "
                                "handed over as it is", shown(sender), reference,
                                len(pending.parts), total, self.part_timeout_s)
                    del self._pending[key]
                    continue
                if now - pending.first_seen >= self.max_age_s:
                    self._drop(key, f"not taken within {self.max_age_s:.0f} s")

    def run(self, config: SmppConfig, stop: threading.Event, *, step_s: float = 0.5) -> None:
        """Bind as `config.mode` (receiver or transceiver) and serve until `stop` is set."""
        mode = config.mode if config.mode in ("receiver", "transceiver") else "receiver"
        link = SmppLink(config, mode, on_deliver=self.handle)
        try:
            link.serve(stop, reconnect=True, tick=self.flush, step_s=step_s)
        finally:
            link.close()


def serve(url: str, on_message: OnMessage, on_receipt: OnReceipt,
          stop: threading.Event | None = None, *,
          on_dead_letter: OnDeadLetter | None = None) -> None:
    """Run an SMPP receiver for `smpp://...` until `stop` is set (or forever)."""
    receiver = SmppReceiver(on_message, on_receipt, on_dead_letter=on_dead_letter)
    receiver.run(SmppConfig.from_url(url), stop or threading.Event())


def store_callbacks(ingest: Ingest) -> tuple[OnMessage, OnReceipt, OnDeadLetter]:
    """The receiver's callables on the message store: MOs recorded and enqueued by `ingest`
    (those to a short code it does not serve refused, as over HTTP), receipts and dead
    letters written through its pool."""

    def on_message(sender: str, shortcode: str, text: str, external_id: str) -> None:
        sms = InboundSms.model_validate({"from": sender, "to": shortcode, "text": text,
                                         "id": external_id, "smsc": "smpp"})
        # What the HTTP door refuses this one does too; a ValueError makes it a dead letter.
        problem = not_served(ingest.settings, sms)
        if problem is not None:
            raise ValueError(problem)
        # Unavailable propagates: the SMSC gets an error and delivers the message again.
        ingest.accept(sms)

    def on_receipt(message_id: str, state: str) -> None:
        with ingest.pool.connection() as conn:
            messages.record_receipt(conn, message_id, state)

    def on_dead_letter(reason: str) -> None:
        with ingest.pool.connection() as conn:
            messages.add_dead_letter(conn, task="smpp-ingest", reason=reason)

    return on_message, on_receipt, on_dead_letter


def run(settings: Settings, database_url: str, stop: threading.Event | None = None) -> None:
    """Receive on `settings.smpp_receiver` into the message store at `database_url` until
    `stop` is set (or forever); a store that fails raises psycopg's error."""
    pool = db.create_pool(database_url, statement_timeout_ms=settings.statement_timeout_ms,
                          name="smpp-ingest",
                          transaction_pooler=settings.database_transaction_pooler)
    on_message, on_receipt, on_dead_letter = store_callbacks(
        Ingest(settings, pool, create_app(settings)))
    try:
        serve(settings.smpp_receiver or "", on_message, on_receipt, stop,
              on_dead_letter=on_dead_letter)
    finally:
        pool.close()
