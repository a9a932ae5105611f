"""Reading one deliver_sm: its addresses, its user data and UDH, a delivery receipt in it.

Pure functions of the PDU; what the receiver does with what they find is in smpp.py.
`Refused` marks what no redelivery can make acceptable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from replies import encoding
from replies.masking import mask_digits
from replies.transports.smpp.link import Pdu

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
    text = pdu_field(pdu, "short_message") or pdu_field(pdu, "message_payload") or b""
    if isinstance(text, str):
        text = text.encode("latin-1", errors="replace")
    message_id = text_of(pdu_field(pdu, "receipted_message_id"))
    if not message_id and (found := _RECEIPT_ID.search(text)):
        message_id = found[1].decode("ascii", errors="replace")
    state = STATES.get(pdu_field(pdu, "message_state") or 0)
    if state is None and (found := _RECEIPT_STAT.search(text)):
        state = STATS.get(found[1].decode("ascii", errors="replace").upper(), "unknown")
    if not message_id:
        return None
    return Receipt(message_id, state or "unknown")


class Refused(Exception):
    """A deliver_sm that no redelivery can make acceptable; the reason names no personal data."""


def pdu_field(pdu: Pdu, name: str) -> Any:
    """An optional field of `pdu`, or None."""
    # smpplib sets an optional parameter (TLV) as an attribute only when the PDU has it.
    return getattr(pdu, name, None)


def text_of(value: bytes | str | None) -> str:
    """A C-octet string field as text."""
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("ascii", errors="replace")
    return value or ""


def sender_of(address: bytes | str | None, ton: int | None) -> str:
    """The sender as the ingest takes it: an international number with its +."""
    text = text_of(address)
    return f"+{text}" if ton == 1 and text.isdigit() else text


def shortcode_of(address: bytes | str | None) -> str:
    """Our short code as the settings name it, whatever TON the SMSC gives it."""
    return text_of(address).removeprefix("+")


def printable(value: str) -> bool:
    """Not empty, and no control characters."""
    return bool(value) and value.isprintable()


def shown(address: str) -> str:
    """An address as a log line or a dead letter may show it: masked, controls replaced."""
    return mask_digits("".join(ch if ch.isprintable() else "?" for ch in address)) or "(empty)"


def concat_of_udh(payload: bytes) -> tuple[encoding.Concat | None, bytes]:
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


def check_concat(concat: encoding.Concat) -> None:
    """Refused if the part number does not fit the count of parts."""
    if concat.total > 1 and not 1 <= concat.sequence <= concat.total:
        raise Refused(f"part {concat.sequence} of {concat.total} in its UDH or SAR TLVs")


def payload_of(pdu: Pdu) -> bytes:
    """The user data, short_message or message_payload, as octets."""
    payload = pdu_field(pdu, "short_message") or pdu_field(pdu, "message_payload") or b""
    return payload.encode("latin-1") if isinstance(payload, str) else payload


def describe_invalid(error: ValueError) -> str:
    """What was wrong, without the input (pydantic's message would quote the text)."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                         for e in errors(include_input=False, include_url=False))
    return mask_digits(str(error))[:200]
