"""Properties of the parser that hold for any text, IIN, plate or registration."""

from __future__ import annotations

import datetime as dt
import json
import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from parsers import Command, ErrorCode, ParseError
from parsers.arguments import registration
from parsers.distance import within_one_edit
from parsers.iin import check_digit, is_valid_iin
from parsers.lookalike import PLATE_LETTERS
from parsers.normalize import skeleton
from tests.support.parser_cases import (
    DIGIT_LOOKALIKES,
    HOUSING_KEYWORDS,
    KINDERGARTEN_KEYWORDS,
    TECH_KEYWORDS,
    default_index,
)

INDEX = default_index()
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Letters and marks where the folding rules live, so that examples hit them often.
_TRICKY = list("kKhHcCqQxXyYjJwWsSzZtT'’ʼ`´ -.,\n\u0301\u0306\u200f\u00ad0123456789"
               "хХкКчЧшШщЩжЖцЦыЫйЙьЪёЁәғқңөұүһіІ") + ["kh", "ch", "sh", "zh", "ts", "щ"]
_TEXT = st.lists(st.one_of(st.characters(), st.sampled_from(_TRICKY)), max_size=40).map("".join)
_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)  # surrogates too
_KEYWORDS = [keyword for _, keyword in TECH_KEYWORDS + KINDERGARTEN_KEYWORDS + HOUSING_KEYWORDS]


@given(_TEXT)
@PROPERTY
def test_skeleton_is_idempotent(text: str) -> None:
    once = skeleton(text)
    assert skeleton(once) == once


@given(_TEXT)
@PROPERTY
def test_skeleton_is_lower_case_latin_and_ascii_digits(text: str) -> None:
    assert re.fullmatch(r"(?:[a-z]+|[0-9]+)(?: (?:[a-z]+|[0-9]+))*|", skeleton(text))


@st.composite
def valid_iins(draw: st.DrawFn) -> str:
    """A valid IIN: a birth date from 1800 to 2099, its century digit, a serial, the check digit."""
    born = draw(st.dates(dt.date(1800, 1, 1), dt.date(2099, 12, 31)))
    century = {18: 1, 19: 3, 20: 5}[born.year // 100] + draw(st.integers(0, 1))
    first11 = f"{born:%y%m%d}{century}{draw(st.integers(0, 9999)):04d}"
    check = check_digit(first11)
    assume(check is not None)
    return f"{first11}{check}"


@st.composite
def spaced(draw: st.DrawFn, value: str) -> str:
    """`value` with runs of spaces (of several kinds) between some of its characters."""
    gaps = st.sampled_from(["", "", "", " ", "  ", "\u00a0", "\t"])
    return "".join(char + draw(gaps) for char in value).strip()


@given(valid_iins().flatmap(lambda iin: st.tuples(st.just(iin), spaced(iin))),
       st.sampled_from([keyword for _, keyword in KINDERGARTEN_KEYWORDS]),
       st.sampled_from([keyword for _, keyword in HOUSING_KEYWORDS]))
@PROPERTY
def test_every_valid_iin_parses_however_spaced(iin_typed: tuple[str, str], kindergarten: str,
                                               housing: str) -> None:
    iin, typed = iin_typed
    assert is_valid_iin(iin)
    assert INDEX.parse("1414", f"{kindergarten} {typed}") == Command("kindergarten_queue",
                                                                     {"child_iin": iin})
    assert INDEX.parse("1414", f"{housing} {typed}") == Command("housing_queue", {"iin": iin})


@given(valid_iins(), st.integers(0, 10), st.integers(1, 9))
@PROPERTY
def test_a_changed_check_digit_is_refused(iin: str, position: int, delta: int) -> None:
    changed = f"{iin[:11]}{(int(iin[11]) + delta) % 10}"
    assert not is_valid_iin(changed)


_PLATE_CHAR = st.sampled_from("ABCEHKMOPTXY")
_DIGIT = st.sampled_from("0123456789")


@st.composite
def typed_plates(draw: st.DrawFn) -> tuple[str, str]:
    """(plate as typed, plate as returned): either mask, look-alikes, case, spaces, hyphens."""
    digits = draw(st.text(_DIGIT, min_size=3, max_size=3))
    letters = draw(st.text(_PLATE_CHAR, min_size=3, max_size=3))
    if draw(st.booleans()):
        plate = f"{digits}{letters}{draw(st.text(_DIGIT, min_size=2, max_size=2))}"
    else:
        plate = f"{draw(_PLATE_CHAR)}{digits}{letters}"
    cyrillic = {latin: cyr for cyr, latin in zip("АВСЕНКМОРТХУ", "ABCEHKMOPTXY")}
    typed = "".join(cyrillic[c] if c in cyrillic and draw(st.booleans()) else c for c in plate)
    typed = typed.lower() if draw(st.booleans()) else typed
    gaps = st.sampled_from(["", "", " ", "-", " - ", "\u2013"])
    return "".join(c + draw(gaps) for c in typed).strip(" -\u2013"), plate


@given(typed_plates(), st.sampled_from([keyword for _, keyword in TECH_KEYWORDS]))
@PROPERTY
def test_every_plate_parses_however_typed(plate: tuple[str, str], keyword: str) -> None:
    typed, expected = plate
    assert typed.translate(PLATE_LETTERS).upper().replace(" ", "").replace("-", "").replace(
        "\u2013", "") == expected
    assert INDEX.parse("1414", f"{keyword} {typed}") == Command("tech_inspection",
                                                               {"plate": expected})


@given(st.sampled_from(["1414", "8188", "0000"]),
       st.one_of(_ANY_TEXT, _TEXT, st.tuples(st.sampled_from(_KEYWORDS), _TEXT).map("".join),
                 st.tuples(st.sampled_from(_KEYWORDS), st.just(" "), _ANY_TEXT).map("".join)))
@PROPERTY
def test_random_text_never_raises(shortcode: str, text: str) -> None:
    result = INDEX.parse(shortcode, text)
    assert INDEX.parse(shortcode, text) == result
    shape = result.as_dict()
    json.dumps(shape)
    if isinstance(result, Command):
        assert set(shape) == {"service", "args"}
    else:
        assert isinstance(result, ParseError) and set(shape) == {"service", "error"}
        assert shape["error"] in {str(code) for code in ErrorCode}


def _swap_one_digit(value: str, draw: st.DrawFn) -> str:
    """`value` with one of its ASCII digits replaced by a non-ASCII character read as that digit."""
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    i = draw(st.sampled_from(positions))
    return value[:i] + draw(st.sampled_from(DIGIT_LOOKALIKES[int(value[i])])) + value[i + 1:]


@st.composite
def texts_with_a_foreign_digit(draw: st.DrawFn) -> tuple[str, str]:
    """(short code, text) of a valid request whose number has one digit of another script."""
    kind = draw(st.sampled_from(["iin", "child", "plate", "cmnd", "date"]))
    if kind in ("iin", "child"):
        iin = _swap_one_digit(draw(valid_iins()), draw)
        return "1414", f"{'4' if kind == 'iin' else '5'} {iin}"
    if kind == "plate":
        return "1414", f"8 {_swap_one_digit(draw(typed_plates())[1], draw)}"
    cmnd, born = "012345678901", "01.02.1990"
    if kind == "cmnd":
        cmnd = _swap_one_digit(cmnd, draw)
    else:
        born = _swap_one_digit(born, draw)
    return "8188", f"TK,Nguyen Van An,{cmnd},{born}"


@given(texts_with_a_foreign_digit())
@PROPERTY
def test_no_non_ascii_digit_is_ever_accepted(request: tuple[str, str]) -> None:
    shortcode, text = request
    assert not isinstance(INDEX.parse(shortcode, text), Command), text


@given(st.sampled_from(["1414", "8188"]), _ANY_TEXT)
@PROPERTY
def test_arguments_hold_only_ascii_digits(shortcode: str, text: str) -> None:
    result = INDEX.parse(shortcode, text)
    if isinstance(result, Command):
        for value in result.args.values():
            assert value is None or all(c.isascii() for c in value if c.isdigit())


_VIETNAMESE = st.text(st.sampled_from("abcdeghiklmnopqrstuvxyăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩị"
                                      "òóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"), min_size=1, max_size=8)


@given(st.lists(_VIETNAMESE, min_size=1, max_size=4),
       st.text(st.sampled_from("0123456789"), min_size=9, max_size=9).flatmap(
           lambda nine: st.sampled_from([nine, nine + "123"])),
       st.dates(dt.date(1900, 1, 1), dt.date(2024, 6, 1)),
       st.sampled_from([",", ";", " , ", "; "]), st.sampled_from([".", "/"]))
@PROPERTY
def test_every_valid_registration_parses(words: list[str], cmnd: str, born: dt.date,
                                         separator: str, date_separator: str) -> None:
    name = " ".join(word.title() for word in words)
    date = f"{born.day:02d}{date_separator}{born.month:02d}{date_separator}{born.year}"
    parsed = registration(separator.join(["TK", name, cmnd, date]), dt.date(2024, 6, 1))
    assert parsed["id_number"] == cmnd and parsed["birth_date"] == born.isoformat()
    assert re.fullmatch(r"[A-Za-z]+(?: [A-Za-z]+)*", parsed["full_name"])
    assert len(parsed["full_name"]) == len(name)


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance: the textbook table, as the reference."""
    rows = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


@given(st.text("abch", max_size=7), st.text("abch", max_size=7))
@PROPERTY
def test_within_one_edit_agrees_with_the_reference(a: str, b: str) -> None:
    assert within_one_edit(a, b) is (_osa(a, b) <= 1)
