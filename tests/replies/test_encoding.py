"""GSM-7 / UCS-2 encoding and segmentation, and every reply template against it."""

from __future__ import annotations

import datetime as dt
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replies import encoding
from replies.encoding import BASIC, EXTENSION, Concat, EncodingError, split
from replies.reply import Reply
from replies.templates import Templates

GSM_CHARS = [c for c in BASIC if c != "\x1b"] + list(EXTENSION)


@pytest.mark.parametrize(("text", "gsm7"), [
    ("Servis ne naiden. Isprav'te vash tekst.", True),
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", True),   # the basic table's non-ASCII
    ("^{}\\[~]|€", True),                                    # the extension table
    ("line\nbreak\r", True),
    ("mozhetе", False),     # Cyrillic е (U+0435), the seed's typo
    ("Очередь", False),
    ("naïve", False),       # ï is Latin-1 but not GSM-7
    ("`", False),           # backtick: ASCII, not GSM-7
    ("\x1b", False),        # the escape itself is not a character
    ("😀", False),
    ("", True),
])
def test_is_gsm7(text, gsm7):
    assert encoding.is_gsm7(text) is gsm7
    assert encoding.coding_of(text) == ("gsm7" if gsm7 else "ucs2")


@pytest.mark.parametrize(("text", "septets"), [
    ("@", b"\x00"), ("A", b"\x41"), ("ä", b"\x7b"), ("§", b"\x5f"), ("¿", b"\x60"),
    ("€", b"\x1b\x65"), ("[", b"\x1b\x3c"), ("]", b"\x1b\x3e"), ("{", b"\x1b\x28"),
    ("}", b"\x1b\x29"), ("\\", b"\x1b\x2f"), ("~", b"\x1b\x3d"), ("^", b"\x1b\x14"),
    ("|", b"\x1b\x40"), ("\x0c", b"\x1b\x0a"), ("a€b", b"\x61\x1b\x65\x62"),
])
def test_encode_gsm7_gives_unpacked_septets(text, septets):
    assert encoding.encode_gsm7(text) == septets
    assert encoding.decode_gsm7(septets) == text


def test_encode_gsm7_refuses_other_characters():
    with pytest.raises(EncodingError):
        encoding.encode_gsm7("Очередь")


def test_an_unknown_escape_shows_the_basic_character():
    assert encoding.decode_gsm7(b"\x1b\x41") == "A"


# (text, coding, number of parts, length of each part in septets / code units)
SEGMENTS = [
    ("a" * 160, "gsm7", [160]),
    ("a" * 161, "gsm7", [153, 8]),
    ("a" * 306, "gsm7", [153, 153]),
    ("a" * 307, "gsm7", [153, 153, 1]),
    ("€" * 80, "gsm7", [160]),                      # 80 two-septet characters fill one SMS
    ("€" * 81, "gsm7", [152, 10]),                  # a pair never straddles: 76 € = 152 septets
    ("a" * 152 + "€" + "b" * 7, "gsm7", [152, 9]),  # the escape pair moves whole to part 2
    ("a" * 159 + "€", "gsm7", [153, 8]),            # 161 septets: concatenated
    ("Д" * 70, "ucs2", [70]),
    ("Д" * 71, "ucs2", [67, 4]),
    ("Д" * 134, "ucs2", [67, 67]),
    ("a" * 69 + "😀", "ucs2", [67, 4]),            # 71 code units; the pair is not split
    ("a" * 66 + "😀" + "b" * 3, "ucs2", [66, 5]),  # the surrogate pair moves whole to part 2
    ("😀" * 35, "ucs2", [70]),
    ("", "gsm7", [0]),
]


@pytest.mark.parametrize(("text", "coding", "lengths"), SEGMENTS)
def test_split(text, coding, lengths):
    segmented = split(text)
    assert segmented.coding == coding
    assert [encoding.length(p, coding) for p in segmented.parts] == lengths
    assert "".join(segmented.parts) == text
    assert segmented.data_coding == {"gsm7": 0, "ucs2": 8}[coding]


def test_a_gsm_part_of_a_ucs2_message_can_be_kept_ucs2():
    assert split("hello", "ucs2").coding == "ucs2"


def test_too_many_parts_is_refused():
    with pytest.raises(EncodingError, match="at most 255"):
        split("a" * (153 * 255 + 1))


def test_concat_udh_and_back():
    udh = encoding.concat_udh(0x2A, 3, 2)
    assert udh == b"\x05\x00\x03\x2a\x03\x02"
    assert encoding.strip_udh(udh + b"text") == (Concat(0x2A, 3, 2), b"text")
    sixteen = b"\x06\x08\x04\x12\x34\x02\x01"
    assert encoding.strip_udh(sixteen + b"x") == (Concat(0x1234, 2, 1), b"x")
    assert encoding.strip_udh(b"\x03\x24\x01\x01x") == (None, b"x")   # another IE only


@pytest.mark.parametrize(("data", "data_coding", "text"), [
    (b"hello", 0x00, "hello"), (b"\x1b\x65", 0x00, "€"), (b"hello", 0x01, "hello"),
    ("Привет".encode("utf-16-be"), 0x08, "Привет"), ("é".encode("latin-1"), 0x03, "é"),
    ("Д".encode("utf-16-be"), 0x18, "Д"),    # GSM DCS general group, UCS-2 (class 0)
    (b"hi", 0xF0, "hi"),                      # DCS message class group, GSM-7
])
def test_decode_by_data_coding(data, data_coding, text):
    assert encoding.decode(data, data_coding) == text


texts = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700) | st.text(max_size=400)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_split_properties(text):
    segmented = split(text)
    limit = {"gsm7": (160, 153), "ucs2": (70, 67)}[segmented.coding]
    sizes = [encoding.length(p, segmented.coding) for p in segmented.parts]
    assert "".join(segmented.parts) == text
    assert all(size <= (limit[0] if len(sizes) == 1 else limit[1]) for size in sizes)
    total = encoding.length(text, segmented.coding)
    # Minimal: one part when it fits, else no fewer parts could hold the text
    # (a part ends early only by the one unit a two-unit character needs).
    if total <= limit[0]:
        assert len(sizes) == 1
    else:
        assert all(size >= limit[1] - 1 for size in sizes[:-1])
        assert len(sizes) - 1 < -(-total // limit[1]) + 1


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=300))
def test_gsm7_round_trip(text):
    assert encoding.decode_gsm7(encoding.encode_gsm7(text)) == text
    assert len(encoding.encode_gsm7(text)) == encoding.length(text, "gsm7")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_ucs2_parts_never_split_a_surrogate_pair(text):
    for part in split(text, "ucs2").parts:
        part.encode("utf-16-be").decode("utf-16-be")   # raises on a lone surrogate


# Realistic worst-case values for the placeholders the templates use; a new
# placeholder gets a 20-character value until it is given one here.
REALISTIC = {
    "plate": "A123***", "valid_from": dt.date(2024, 12, 31), "valid_to": dt.date(2025, 12, 31),
    "child_iin": "2106***3018", "iin": "8801***0459", "position": 123456,
    "applied_on": dt.date(2024, 5, 20), "registered_on": dt.date(2019, 3, 12),
    "username": "nguyenthithanhhuong1990", "password": "Xk7#pQ2@", "code": "123456",
}


def _placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


TEMPLATES = list(Templates.load())


@pytest.mark.parametrize(("service", "outcome", "text"), TEMPLATES,
                         ids=[f"{s}.{o}" for s, o, _ in TEMPLATES])
def test_every_template_is_gsm7_in_one_segment(service, outcome, text):
    assert encoding.is_gsm7(text), [c for c in text if not encoding.is_gsm7(c)]
    assert len(split(text).parts) == 1
    params = {name: REALISTIC.get(name, "X" * 20) for name in _placeholders(text)}
    rendered = Templates.load().render(Reply(service, outcome, params))
    assert encoding.is_gsm7(rendered)
    assert encoding.length(rendered, "gsm7") <= 160, rendered
