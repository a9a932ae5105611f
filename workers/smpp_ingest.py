"""The SMPP door: a receiver (or transceiver) bind that takes deliver_sm from the SMSC.

Mobile-originated messages are decoded (data_coding 0 GSM-7, 8 UCS-2, ...),
concatenated parts joined by their UDH (or SAR TLV) reference, and each whole
message handed to `on_message(sender, shortcode, text, external_id)`. Delivery
receipts go to `on_receipt(message_id, state)`. When a callable raises, the
SMSC gets ESME_RX_T_APPN and delivers the PDU again later; nothing here touches
the database (the caller wires `on_message` to `Ingest.accept`).
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
from replies.masking import mask_digits
from replies.transports.smpp import Pdu, SmppConfig, SmppLink

log = logging.getLogger(__name__)

OnMessage = Callable[[str, str, str, str], None]
OnReceipt = Callable[[str, str], None]

RECEIPT_TYPES = 0x04 | 0x08 | 0x10 | 0x20   # SMSC receipt, SME acks, intermediate notification
UDHI = 0x40
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


@dataclass(slots=True)
class _Pending:
    """The parts of one concatenated MO seen so far."""

    data_coding: int
    total: int
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)


class SmppReceiver:
    """Turns deliver_sm into whole messages and receipts for the two callables.

    `handle` answers one PDU (the status for deliver_sm_resp), `flush` hands over
    concatenated messages whose missing parts did not come within
    `part_timeout_s` (what came, in order), and `run` binds and serves until stopped.
    """

    def __init__(self, on_message: OnMessage, on_receipt: OnReceipt, *,
                 part_timeout_s: float = 60.0, retry_window_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_message = on_message
        self.on_receipt = on_receipt
        self.part_timeout_s = part_timeout_s
        self.retry_window_s = retry_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, int, int], _Pending] = {}
        # Messages whose callable failed, by content, with the id they were given: the
        # SMSC's redelivery of a deliver_sm carries no id of its own, so it gets this one
        # and the ingest records it once.
        self._failed: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def handle(self, pdu: Pdu) -> int:
        """Take one deliver_sm; ESME_ROK, or ESME_RX_T_APPN so the SMSC delivers it again."""
        with self._lock:
            try:
                if (pdu.esm_class or 0) & RECEIPT_TYPES:
                    return self._receipt(pdu)
                return self._mobile_originated(pdu)
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
        payload = _field(pdu, "short_message") or _field(pdu, "message_payload") or b""
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        data_coding = pdu.data_coding or 0
        concat = None
        if (pdu.esm_class or 0) & UDHI:
            concat, payload = encoding.strip_udh(payload)
        elif _field(pdu, "sar_total_segments"):
            concat = encoding.Concat(_field(pdu, "sar_msg_ref_num") or 0,
                                     _field(pdu, "sar_total_segments"),
                                     _field(pdu, "sar_segment_seqnum") or 1)
        if concat is None or concat.total <= 1:
            self._deliver(sender, shortcode, encoding.decode(payload, data_coding))
            return c.SMPP_ESME_ROK
        key = (sender, shortcode, concat.reference, concat.total)
        pending = self._pending.setdefault(key, _Pending(data_coding, concat.total, self._clock()))
        pending.parts[concat.sequence] = payload
        if len(pending.parts) < pending.total:
            return c.SMPP_ESME_ROK
        # Joined as octets before decoding: a GSM escape or surrogate pair may straddle parts.
        whole = b"".join(pending.parts[n] for n in sorted(pending.parts))
        self._deliver(sender, shortcode, encoding.decode(whole, pending.data_coding))
        del self._pending[key]   # only once taken: a failed last part finds the others again
        return c.SMPP_ESME_ROK

    def _deliver(self, sender: str, shortcode: str, text: str) -> None:
        now = self._clock()
        while self._failed and next(iter(self._failed.values()))[1] < now - self.retry_window_s:
            self._failed.popitem(last=False)
        content = hashlib.sha256(f"{sender}\0{shortcode}\0{text}".encode()).hexdigest()
        external_id, _ = self._failed.get(content, (f"smpp-{uuid.uuid4().hex}", now))
        try:
            self.on_message(sender, shortcode, text, external_id)
        except Exception:
            self._failed[content] = (external_id, self._failed.get(content, (None, now))[1])
            raise
        self._failed.pop(content, None)
        log.info("smpp MO from %s to %s taken as %s", mask_digits(sender), shortcode, external_id)

    def flush(self) -> None:
        """Hand over the concatenated messages that waited too long for a part, as they are."""
        with self._lock:
            cutoff = self._clock() - self.part_timeout_s
            for key, pending in list(self._pending.items()):
                if pending.first_seen > cutoff:
                    continue
                sender, shortcode, reference, total = key
                whole = b"".join(pending.parts[n] for n in sorted(pending.parts))
                try:
                    self._deliver(sender, shortcode, encoding.decode(whole, pending.data_coding))
                except Exception:
                    log.exception("incomplete MO from %s not taken yet", mask_digits(sender))
                    continue
                log.warning("smpp MO from %s ref %s: %d of %d parts came in %.0f s; "
                            "handed over as it is", mask_digits(sender), reference,
                            len(pending.parts), total, self.part_timeout_s)
                del self._pending[key]

    def run(self, config: SmppConfig, stop: threading.Event, *, step_s: float = 0.5) -> None:
        """Bind as `config.mode` (receiver or transceiver) and serve until `stop` is set."""
        mode = config.mode if config.mode in ("receiver", "transceiver") else "receiver"
        link = SmppLink(config, mode, on_deliver=self.handle)
        try:
            link.serve(stop, reconnect=True, tick=self.flush, step_s=step_s)
        finally:
            link.close()


def serve(url: str, on_message: OnMessage, on_receipt: OnReceipt,
          stop: threading.Event | None = None) -> None:
    """Run an SMPP receiver for `smpp://...` until `stop` is set (or forever)."""
    SmppReceiver(on_message, on_receipt).run(SmppConfig.from_url(url), stop or threading.Event())
