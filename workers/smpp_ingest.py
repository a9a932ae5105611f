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
callables to the message store with `store_callbacks`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import smpplib.consts as c

from replies import encoding
from replies.encoding import UDHI
from replies.masking import mask_digits
from replies.transports.smpp.config import SmppConfig
from replies.transports.smpp.link import Pdu, SmppLink
from workers import db, messages
from workers.app import create_app
from workers.ingest import InboundSms, Ingest
from workers.messages import MAX_TEXT
from workers.settings import Settings

log = logging.getLogger(__name__)

OnMessage = Callable[[str, str, str, str], None]
OnReceipt = Callable[[str, str], None]
OnDeadLetter = Callable[[str], None]

RECEIPT_TYPES = 0x04 | 0x08 | 0x10 | 0x20   # SMSC receipt, SME acks, intermediate notification
# message_state TLV (SMPP 3.4 5.3.2.35) and the receipt text's stat: field (Appendix B).
STATES = {1: "enroute", 2: "delivered", 3: "expired", 4: "deleted", 5: "undeliverable",
          6: "accepted", 7: "unknown", 8: "rejected", 9: "skipped"}
STATS = {"ENROUTE": "enroute", "DELIVRD": "delivered", "EXPIRED": "expired",
         "DELETED": "deleted", "UNDELIV": "undeliverable", "ACCEPTD": "accepted",
         "UNKNOWN": "unknown", "REJECTD": "rejected", "SKIPPED": "skipped"}
_RECEIPT_ID = re.compile(rb"\bid:(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(rb"\bstat:(\S+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt: the SMSC's id of the message we submitted, and what became of it."""

    message_id: str
    state: str


def parse_receipt(pdu: Pdu) -> Receipt | None:
    """The receipt in a deliver_sm: TLVs receipted_message_id/message_state, else the text."""
    text = _field(pdu, "short_message") or _field(pdu, "message_payload") or b""
    if isinstance(text, str):
        text = text.encode("latin-1", errors="replace")
    message_id = _str(_field(pdu, "receipted_message_id"))
    if not message_id and (found := _RECEIPT_ID.search(text)):
        message_id = found[1].decode("ascii", errors="replace")
    state = STATES.get(_field(pdu, "message_state") or 0)
    if state is None and (found := _RECEIPT_STAT.search(text)):
        state = STATS.get(found[1].decode("ascii", errors="replace").upper(), "unknown")
    if not message_id:
        return None
    return Receipt(message_id, state or "unknown")


class Refused(Exception):
    """A deliver_sm that no redelivery can make acceptable; the reason names no personal data."""


def _field(pdu: Pdu, name: str) -> Any:
    # smpplib sets an optional parameter (TLV) as an attribute only when the PDU has it.
    return getattr(pdu, name, None)


def _str(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("ascii", errors="replace")
    return value or ""


def _sender(address: bytes | str | None, ton: int | None) -> str:
    """The sender as the ingest takes it: an international number with its +."""
    text = _str(address)
    return f"+{text}" if ton == 1 and text.isdigit() else text


def _shortcode(address: bytes | str | None) -> str:
    """Our short code as the settings name it, whatever TON the SMSC gives it."""
    return _str(address).removeprefix("+")


def _printable(value: str) -> bool:
    return bool(value) and value.isprintable()


def _shown(address: str) -> str:
    """An address as a log line or a dead letter may show it: masked, controls replaced."""
    return mask_digits("".join(ch if ch.isprintable() else "?" for ch in address)) or "(empty)"


def _concat_of_udh(payload: bytes) -> tuple[encoding.Concat | None, bytes]:
    """The UDH's concatenation info and the user data; Refused if the header does not fit."""
    if not payload:
        raise Refused("UDH indicator set on an empty message")
    header_length = payload[0]
    if 1 + header_length > len(payload):
        raise Refused(f"UDH of {header_length} octets in a message of {len(payload)}")
    position = 1
    while position < 1 + header_length:
        if position + 2 > 1 + header_length or position + 2 + payload[position + 1] > \
                1 + header_length:
            raise Refused("an information element overruns the UDH")
        position += 2 + payload[position + 1]
    return encoding.strip_udh(payload)


def _check_concat(concat: encoding.Concat) -> None:
    if concat.total > 1 and not 1 <= concat.sequence <= concat.total:
        raise Refused(f"part {concat.sequence} of {concat.total} in its UDH or SAR TLVs")


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
                                         _sender(pdu.source_addr, pdu.source_addr_ton),
                                         _shortcode(pdu.destination_addr), pdu.data_coding or 0,
                                         _payload(pdu), esm_class=pdu.esm_class or 0)
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
        sender = _sender(pdu.source_addr, pdu.source_addr_ton)
        shortcode = _shortcode(pdu.destination_addr)
        # Checked before any part is held: no reply could ever reach such a sender.
        if not _printable(sender):
            raise Refused("no usable sender (empty, or control characters)")
        if not _printable(shortcode):
            raise Refused("no usable short code (empty, or control characters)")
        payload = _payload(pdu)
        data_coding = pdu.data_coding or 0
        concat = None
        if (pdu.esm_class or 0) & UDHI:
            concat, payload = _concat_of_udh(payload)
        elif _field(pdu, "sar_total_segments"):
            concat = encoding.Concat(_field(pdu, "sar_msg_ref_num") or 0,
                                     _field(pdu, "sar_total_segments"),
                                     _field(pdu, "sar_segment_seqnum") or 1)
        if concat is not None:
            _check_concat(concat)
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
            raise Refused(f"the ingest refused it: {_describe(error)}") from error
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
        letter = (f"deliver_sm refused: {reason} (from {_shown(sender)} to {_shown(shortcode)}, "
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
                    "%d given up so far", _shown(sender), _shown(shortcode), reference, why,
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
                    log.exception("incomplete MO from %s not taken yet", _shown(sender))
                else:
                    log.warning("smpp MO from %s ref %s: %d of %d parts came in %.0f s; "
                                "handed over as it is", _shown(sender), reference,
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


def _payload(pdu: Pdu) -> bytes:
    payload = _field(pdu, "short_message") or _field(pdu, "message_payload") or b""
    return payload.encode("latin-1") if isinstance(payload, str) else payload


def _describe(error: ValueError) -> str:
    """What was wrong, without the input (pydantic's message would quote the text)."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                         for e in errors(include_input=False, include_url=False))
    return mask_digits(str(error))[:200]


def serve(url: str, on_message: OnMessage, on_receipt: OnReceipt,
          stop: threading.Event | None = None, *,
          on_dead_letter: OnDeadLetter | None = None) -> None:
    """Run an SMPP receiver for `smpp://...` until `stop` is set (or forever)."""
    receiver = SmppReceiver(on_message, on_receipt, on_dead_letter=on_dead_letter)
    receiver.run(SmppConfig.from_url(url), stop or threading.Event())


def store_callbacks(ingest: Ingest) -> tuple[OnMessage, OnReceipt, OnDeadLetter]:
    """The receiver's callables on the message store: MOs recorded and enqueued by `ingest`,
    receipts and dead letters written through its pool."""

    def on_message(sender: str, shortcode: str, text: str, external_id: str) -> None:
        # Unavailable propagates: the SMSC gets an error and delivers the message again.
        ingest.accept(InboundSms.model_validate({"from": sender, "to": shortcode, "text": text,
                                                 "id": external_id, "smsc": "smpp"}))

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
                          name="smpp-ingest")
    on_message, on_receipt, on_dead_letter = store_callbacks(
        Ingest(settings, pool, create_app(settings)))
    try:
        serve(settings.smpp_receiver or "", on_message, on_receipt, stop,
              on_dead_letter=on_dead_letter)
    finally:
        pool.close()
