"""GSM 03.38 (GSM-7) and UCS-2: which alphabet a text needs, its bytes and its segments.

A single SMS carries 140 octets: 160 GSM-7 septets or 70 UCS-2 code units.
Concatenated, each part gives 6 octets to its user data header (UDH), leaving
153 septets or 67 code units. Characters of the GSM-7 extension table
(`^ { } \\ [ ~ ] | €` and form feed) take two septets (escape 0x1B + code), and a
pair is never split between parts; nor is a UTF-16 surrogate pair in UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Coding = Literal["gsm7", "ucs2"]

ESCAPE = 0x1B
# The default alphabet, by septet value; 0x1B is the escape to the extension table.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = {"\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
             "]": 0x3E, "|": 0x40, "€": 0x65}

_BASIC_CODES = {char: code for code, char in enumerate(BASIC) if code != ESCAPE}
_BASIC_CHARS = dict(enumerate(BASIC))
_EXTENSION_CHARS = {code: char for char, code in EXTENSION.items()}

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_PARTS = 255  # the reference/total fields of the concatenation UDH are one octet each

# SMPP data_coding values (SMPP 3.4, 5.2.19).
DATA_CODING: dict[Coding, int] = {"gsm7": 0x00, "ucs2": 0x08}

# The esm_class bit (SMPP 3.4, 5.2.12) saying the short message starts with a UDH.
UDHI = 0x40

UDH_CONCAT_8BIT = 0x00
UDH_CONCAT_16BIT = 0x08


class EncodingError(ValueError):
    """A text that cannot be sent as asked (a non-GSM character, too many parts)."""


def is_gsm7(text: str) -> bool:
    """Whether every character of `text` is in the GSM-7 default alphabet or its extension."""
    return all(c in _BASIC_CODES or c in EXTENSION for c in text)


def coding_of(text: str) -> Coding:
    """GSM-7 when the text allows it, else UCS-2."""
    return "gsm7" if is_gsm7(text) else "ucs2"


def septets(char: str) -> int:
    """The GSM-7 septets one character takes: 1, or 2 for the extension table."""
    if char in _BASIC_CODES:
        return 1
    if char in EXTENSION:
        return 2
    raise EncodingError(f"not a GSM-7 character: {char!r}")


def units(char: str) -> int:
    """The UTF-16 code units one character takes: 1, or 2 outside the BMP (a surrogate pair)."""
    return 2 if ord(char) > 0xFFFF else 1


def length(text: str, coding: Coding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) of `text`."""
    size = septets if coding == "gsm7" else units
    return sum(size(c) for c in text)


def encode_gsm7(text: str) -> bytes:
    """Unpacked septets, one per octet, as SMPP data_coding 0 carries them."""
    out = bytearray()
    for char in text:
        code = _BASIC_CODES.get(char)
        if code is not None:
            out.append(code)
        elif char in EXTENSION:
            out += bytes((ESCAPE, EXTENSION[char]))
        else:
            raise EncodingError(f"not a GSM-7 character: {char!r}")
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    """Text from unpacked septets; an unknown escape shows the basic character (3GPP 23.038)."""
    out: list[str] = []
    escaped = False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            out.append(_EXTENSION_CHARS.get(code) or _BASIC_CHARS[code])
            escaped = False
        elif code == ESCAPE:
            escaped = True
        else:
            out.append(_BASIC_CHARS[code])
    return "".join(out)


def encode(text: str, coding: Coding) -> bytes:
    """The octets of `text` in `coding`: unpacked GSM-7 septets or UTF-16BE."""
    if coding == "gsm7":
        return encode_gsm7(text)
    return text.encode("utf-16-be")


def decode(data: bytes, data_coding: int) -> str:
    """Text of an SMPP short message by its data_coding (SMPP 3.4 5.2.19, GSM 03.38 DCS)."""
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm7":
        return decode_gsm7(data)
    return data.decode(alphabet, errors="replace")


# SMPP's own values 0x00-0x0F; the rest follow the GSM 03.38 data coding scheme.
_SMPP_ALPHABETS = {0x00: "gsm7", 0x01: "ascii", 0x03: "latin-1", 0x06: "iso8859-5",
                   0x07: "iso8859-8", 0x08: "utf-16-be"}


def _alphabet(data_coding: int) -> str:
    if data_coding < 0x10:
        return _SMPP_ALPHABETS.get(data_coding, "latin-1")  # octets kept as Latin-1, none lost
    group = data_coding & 0xF0
    if group < 0x40:  # general data coding, bits 3-2 the alphabet
        return {0x00: "gsm7", 0x08: "utf-16-be"}.get(data_coding & 0x0C, "latin-1")
    if group in (0xC0, 0xD0):  # message waiting indication, GSM-7
        return "gsm7"
    if group == 0xE0:  # message waiting indication, UCS-2
        return "utf-16-be"
    if group == 0xF0:  # data coding / message class: bit 2 set is 8-bit data
        return "latin-1" if data_coding & 0x04 else "gsm7"
    return "latin-1"


@dataclass(frozen=True, slots=True)
class Segmented:
    """A text cut into the parts of one (possibly concatenated) SMS."""

    coding: Coding
    parts: list[str]

    @property
    def data_coding(self) -> int:
        """The SMPP data_coding of every part."""
        return DATA_CODING[self.coding]

    @property
    def concatenated(self) -> bool:
        """Whether the parts need a concatenation UDH."""
        return len(self.parts) > 1


def split(text: str, coding: Coding | None = None) -> Segmented:
    """`text` in as few parts as its alphabet allows, each within its limit."""
    coding = coding or coding_of(text)
    single, part = (GSM7_SINGLE, GSM7_PART) if coding == "gsm7" else (UCS2_SINGLE, UCS2_PART)
    size = septets if coding == "gsm7" else units
    if sum(size(c) for c in text) <= single:
        return Segmented(coding, [text])
    parts: list[str] = []
    start, used = 0, 0
    for index, char in enumerate(text):
        # Greedy per character: a two-unit character that does not fit starts the next part.
        width = size(char)
        if used + width > part:
            parts.append(text[start:index])
            start, used = index, 0
        used += width
    parts.append(text[start:])
    if len(parts) > MAX_PARTS:
        raise EncodingError(f"text needs {len(parts)} parts; at most {MAX_PARTS} can be joined")
    return Segmented(coding, parts)


def concat_udh(reference: int, total: int, sequence: int) -> bytes:
    """The 6-octet UDH of one part of a concatenated SMS (IEI 0x00, 8-bit reference)."""
    if not (0 <= reference <= 0xFF and 1 <= sequence <= total <= MAX_PARTS):
        raise EncodingError(f"bad concatenation {reference=} {total=} {sequence=}")
    return bytes((0x05, UDH_CONCAT_8BIT, 0x03, reference, total, sequence))


@dataclass(frozen=True, slots=True)
class Concat:
    """Where a received part belongs: its message's reference, the part count, its number."""

    reference: int
    total: int
    sequence: int


def strip_udh(payload: bytes) -> tuple[Concat | None, bytes]:
    """Split a UDHI short message into its concatenation info (if any) and the user data."""
    if not payload:
        return None, payload
    header_length = payload[0]
    header, body = payload[1:1 + header_length], payload[1 + header_length:]
    concat: Concat | None = None
    position = 0
    while position + 2 <= len(header):
        iei, size = header[position], header[position + 1]
        value = header[position + 2:position + 2 + size]
        if iei == UDH_CONCAT_8BIT and size == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == UDH_CONCAT_16BIT and size == 4:
            concat = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        position += 2 + size
    return concat, body
