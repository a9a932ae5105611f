"""Bad input never raises and always gets the same, documented result."""

from __future__ import annotations

import pytest

from tests.support.parser_cases import default_index

INDEX = default_index()
NOT_FOUND = {"service": None, "error": "service_not_found"}
PLATE_INVALID = {"service": "tech_inspection", "error": "plate_invalid"}
SYNTAX_ERROR = {"service": "account_registration", "error": "syntax_error"}

BAD_INPUT = [
    ("1414", "", NOT_FOUND),
    ("1414", "   \n\t ", NOT_FOUND),
    ("1414", "\x00", NOT_FOUND),
    ("1414", "\x00" * 1600, NOT_FOUND),
    ("1414", "a" * 1600, NOT_FOUND),
    ("1414", "а " * 800, NOT_FOUND),
    ("1414", "щ" * 1600, NOT_FOUND),
    ("1414", "'" * 1600, NOT_FOUND),
    ("1414", "\u0301" * 1600, NOT_FOUND),
    ("1414", "9" * 1600, NOT_FOUND),
    ("1414", "8 " + "1" * 1598, PLATE_INVALID),
    ("1414", "8 " + " ." * 799, PLATE_INVALID),
    ("1414", "Техосмотр" + " " * 1580 + "123ABC01",
     {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "Ochered " * 200, NOT_FOUND),
    ("1414", "8\x00123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "8\x07123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "\u202e8 123ABC01\u202c", {"service": "tech_inspection",
                                         "args": {"plate": "123ABC01"}}),
    ("1414", "\u200f\u200e\u2066", NOT_FOUND),
    ("1414", "🚗🚗🚗", NOT_FOUND),
    ("1414", "🚗 8 123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "\ud800", NOT_FOUND),  # a lone surrogate, as a bad decoder leaves it
    ("1414", "8 \ud800", PLATE_INVALID),
    ("1414", "\ufffd\ufffd", NOT_FOUND),
    ("1414", "٨ ١٢٣ABC٠١", NOT_FOUND),  # Arabic-Indic digits are no keyword and no plate
    ("1414", "8 ١٢٣ABC٠١", PLATE_INVALID),
    ("1414", "8 １２３ABC０１", PLATE_INVALID),  # fullwidth: NFKC would make them ASCII
    ("1414", "5 ９００１０１３００１２６", {"service": "kindergarten_queue",
                                          "error": "child_iin_invalid"}),
    ("1414", "4 ٩٠٠١٠١٣٠٠١٢٦", {"service": "housing_queue", "error": "iin_invalid"}),
    ("1414", "4 𝟗𝟎𝟎𝟏𝟎𝟏𝟑𝟎𝟎𝟏𝟐𝟔", {"service": "housing_queue", "error": "iin_invalid"}),
    ("1414", "4 ⑨00101300126", {"service": "housing_queue", "error": "iin_invalid"}),
    ("8188", "", SYNTAX_ERROR),
    ("8188", "\x00" * 1600, SYNTAX_ERROR),
    ("8188", "TK," + "A" * 1600 + ",123456789,01.02.1990", SYNTAX_ERROR),
    ("8188", "TK,a,1," + ". " * 800 + "x", SYNTAX_ERROR),
    ("8188", "TK,Nguyen Van An,１２３４５６７８９,01.02.1990", SYNTAX_ERROR),
    ("8188", "TK,Nguyen Van An,123456789,٠١.٠٢.١٩٩٠", SYNTAX_ERROR),
    ("8188", "TK,\ud800,123456789,01.02.1990", SYNTAX_ERROR),
    ("8188", "\u202eTK,Nguyen Van An,123456789,01.02.1990", {
        "service": "account_registration",
        "args": {"full_name": "Nguyen Van An", "id_number": "123456789",
                 "birth_date": "1990-02-01"}}),
    ("", "Techosmotr 123ABC01", NOT_FOUND),
]


@pytest.mark.parametrize("shortcode, text, expected", BAD_INPUT,
                         ids=[f"{code}:{text[:20]!r}" for code, text, _ in BAD_INPUT])
def test_bad_input(shortcode: str, text: str, expected: dict) -> None:
    assert INDEX.parse(shortcode, text).as_dict() == expected
    assert INDEX.parse(shortcode, text).as_dict() == expected  # and again the same
