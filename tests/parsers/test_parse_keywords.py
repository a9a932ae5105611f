"""Routing: every keyword of every service in every script, the spec's tables, every error code."""

from __future__ import annotations

import json

import pytest

from parsers import ArgumentError, Command, ErrorCode, KeywordIndex, ParseError, Syntax
from parsers.keywords import keyword_form
from services.registry import default_registry
from tests.support.parser_cases import (
    CHILD_IIN,
    HOUSING_KEYWORDS,
    IIN,
    KINDERGARTEN_KEYWORDS,
    TECH_KEYWORDS,
    default_index,
)

INDEX = default_index()


def parse(text: str, shortcode: str = "1414") -> dict:
    return INDEX.parse(shortcode, text).as_dict()


def _separators(keyword: str) -> list[str]:
    """Between keyword and argument: spaces, a newline, and nothing (word keywords only)."""
    return [" ", "   ", "\n", " \t "] + ([] if keyword.isdigit() else [""])


def test_default_registry_builds_and_the_seed_example_parses() -> None:
    index = KeywordIndex.build(default_registry(), {"1414": ["tech_inspection",
                                                             "kindergarten_queue",
                                                             "housing_queue"],
                                                    "8188": ["account_registration"]})
    result = index.parse("1414", "Техосмотр 123 abc 01")
    assert result.as_dict() == {"service": "tech_inspection", "args": {"plate": "123ABC01"}}
    assert json.loads(json.dumps(result.as_dict())) == result.as_dict()


@pytest.mark.parametrize("variant, keyword", TECH_KEYWORDS, ids=[v for v, _ in TECH_KEYWORDS])
@pytest.mark.parametrize("plate, expected", [("123ABC01", "123ABC01"), ("123 АВС 01", "123ABC01"),
                                             ("А 123 ВСD", "A123BCD")])
def test_tech_inspection_keyword(variant: str, keyword: str, plate: str, expected: str) -> None:
    for separator in _separators(keyword):
        assert parse(f"{keyword}{separator}{plate}") == {
            "service": "tech_inspection", "args": {"plate": expected}}, separator


@pytest.mark.parametrize("variant, keyword", KINDERGARTEN_KEYWORDS,
                         ids=[v for v, _ in KINDERGARTEN_KEYWORDS])
def test_kindergarten_keyword(variant: str, keyword: str) -> None:
    for separator in _separators(keyword):
        assert parse(f"{keyword}{separator}{CHILD_IIN}") == {
            "service": "kindergarten_queue", "args": {"child_iin": CHILD_IIN}}, separator
    assert parse(keyword) == {"service": "kindergarten_queue", "error": "child_iin_missing"}


@pytest.mark.parametrize("variant, keyword", HOUSING_KEYWORDS, ids=[v for v, _ in HOUSING_KEYWORDS])
def test_housing_keyword(variant: str, keyword: str) -> None:
    for separator in _separators(keyword):
        assert parse(f"{keyword}{separator}{IIN}") == {
            "service": "housing_queue", "args": {"iin": IIN}}, separator
    assert parse(keyword) == {"service": "housing_queue", "args": {"iin": None}}


# The tables of SERVICES.md, row by row, as far as the parser decides them (MBG, status and
# "no data" rows are the handlers' business).
SPEC = [
    ("1414", "Техосмотр 123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "Techosmotr123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "Техникалык байкау123ABC01",
     {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("1414", "Tehnikalyk baikauA123BCD",
     {"service": "tech_inspection", "args": {"plate": "A123BCD"}}),
    ("1414", "8 A 123 BCD", {"service": "tech_inspection", "args": {"plate": "A123BCD"}}),
    ("1414", "Blah 123ABC01", {"service": None, "error": "service_not_found"}),  # row 1
    ("1414", "Техосмотр", {"service": "tech_inspection", "error": "plate_invalid"}),  # row 4
    ("1414", "8", {"service": "tech_inspection", "error": "plate_invalid"}),
    ("1414", "Техосмотр 12AB", {"service": "tech_inspection", "error": "plate_invalid"}),
    ("1414", f"5 {CHILD_IIN}", {"service": "kindergarten_queue",
                                "args": {"child_iin": CHILD_IIN}}),
    ("1414", "5", {"service": "kindergarten_queue", "error": "child_iin_missing"}),  # row 4
    ("1414", "Ochered' v detsad 121229600012",  # row 5
     {"service": "kindergarten_queue", "error": "child_iin_invalid"}),
    ("1414", "5 12345", {"service": "kindergarten_queue", "error": "child_iin_invalid"}),
    ("1414", f"4 {IIN}", {"service": "housing_queue", "args": {"iin": IIN}}),
    ("1414", "4", {"service": "housing_queue", "args": {"iin": None}}),  # about oneself
    ("1414", "Очередь на жилье", {"service": "housing_queue", "args": {"iin": None}}),
    ("1414", "4 900101300127", {"service": "housing_queue", "error": "iin_invalid"}),  # row 4
    ("8188", "TK,Nguyen Van An,123456789,01.02.1990", {
        "service": "account_registration",
        "args": {"full_name": "Nguyen Van An", "id_number": "123456789",
                 "birth_date": "1990-02-01"}}),
    ("8188", "TK;Nguyen Van An;123456789;01/02/1990", {
        "service": "account_registration",
        "args": {"full_name": "Nguyen Van An", "id_number": "123456789",
                 "birth_date": "1990-02-01"}}),
    ("8188", "TK,Nguyen Van An,123456789", {"service": "account_registration",
                                            "error": "syntax_error"}),
    ("8188", "Techosmotr 123ABC01", {"service": "account_registration", "error": "syntax_error"}),
    ("8188", "", {"service": "account_registration", "error": "syntax_error"}),
    ("3344", "Techosmotr 123ABC01", {"service": None, "error": "service_not_found"}),
    ("9999", "4", {"service": None, "error": "service_not_found"}),
]


@pytest.mark.parametrize("shortcode, text, expected", SPEC)
def test_spec_table(shortcode: str, text: str, expected: dict) -> None:
    assert parse(text, shortcode) == expected


def test_every_error_code_is_reachable() -> None:
    seen = {parse(text, code).get("error") for code, text, _ in SPEC}
    assert {str(code) for code in ErrorCode} <= seen


TOLERANCE = [
    # One typo in a keyword of 6+ letters: inserted, dropped, replaced, swapped.
    ("Tehosmotrr 123ABC01", "tech_inspection"),
    ("Tehosmtr 123ABC01", "tech_inspection"),
    ("Tehosmatr 123ABC01", "tech_inspection"),
    ("Tehsomotr 123ABC01", "tech_inspection"),
    ("Техосмтор 123ABC01", "tech_inspection"),
    ("Tehnikalyk baikay 123ABC01", "tech_inspection"),
    ("Ochered v detsat 121229600011", "kindergarten_queue"),
    ("Ocherd v detsad 121229600011", "kindergarten_queue"),
    ("Очередь в детсаду 121229600011", "kindergarten_queue"),
    ("Bala-bakshaga kezekk 121229600011", "kindergarten_queue"),
    ("Ochered na zhil 900101300126", "housing_queue"),
    ("Turgyn uige kezec 900101300126", "housing_queue"),
    # A letter of another script inside a keyword counts as a typo.
    ("Tech你osmotr 123ABC01", "tech_inspection"),
    # Keyboard layouts: Cyrillic letters as Latin look-alikes and back.
    ("Texocmotp 123ABC01", "tech_inspection"),
    ("Ovepeдb в детсад 121229600011", None),  # too many letters unlike their look-alike
    ("Оchеrеd v dеtsаd 121229600011", "kindergarten_queue"),
    # Punctuation, case, spacing, invisible characters.
    ("  techosmotr,   123abc01  ", "tech_inspection"),
    ("Техосмотр: 123ABC01.", "tech_inspection"),
    ("Техосмотр 123ABC01 🙏", "tech_inspection"),
    ("Тех осмотр 123ABC01", "tech_inspection"),
    ("Tech\u00adosmotr 123ABC01", "tech_inspection"),
    ("\u200fTechosmotr 123ABC01\u200e", "tech_inspection"),
    ("Ochered'v detsad 121229600011", "kindergarten_queue"),
    ("OCHERED V DETSAD\n121229600011", "kindergarten_queue"),
    ("Балабакшага кезек 121229600011", "kindergarten_queue"),
    ("5 1212 2960 0011", "kindergarten_queue"),
    ("5: 121229600011!", "kindergarten_queue"),
    ("4 - 900101300126", "housing_queue"),
    ("8\ufe0f\u20e3 123ABC01", "tech_inspection"),  # the keycap emoji 8
]


@pytest.mark.parametrize("text, service", TOLERANCE)
def test_tolerance_routes_to_a_command(text: str, service: str | None) -> None:
    result = INDEX.parse("1414", text)
    if service is None:
        assert result == ParseError(None, ErrorCode.SERVICE_NOT_FOUND)
    else:
        assert isinstance(result, Command) and result.service == service, result


POLITENESS = [
    ("Techosmotr 123ABC01 pozhaluista", {"service": "tech_inspection", "error": "plate_invalid"}),
    ("5 121229600011 spasibo", {"service": "kindergarten_queue", "error": "child_iin_invalid"}),
    ("Очередь на жилье, пожалуйста", {"service": "housing_queue", "error": "iin_invalid"}),
    ("Zdravstvuite! Techosmotr 123ABC01", {"service": None, "error": "service_not_found"}),
]


@pytest.mark.parametrize("text, expected", POLITENESS)
def test_polite_words_are_not_needed_but_harmless(text: str, expected: dict) -> None:
    assert parse(text) == expected


GLUED = [
    ("Techosmotr123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
    ("TechosmotrA123BCD", {"service": "tech_inspection", "args": {"plate": "A123BCD"}}),
    ("ТехосмотрА123ВСЕ", {"service": "tech_inspection", "args": {"plate": "A123BCE"}}),
    ("TexocmotpA123BCD", {"service": "tech_inspection", "args": {"plate": "A123BCD"}}),
    ("TechosmotrX123ABC", {"service": "tech_inspection", "args": {"plate": "X123ABC"}}),
    ("Ochered v detsad121229600011", {"service": "kindergarten_queue",
                                      "args": {"child_iin": CHILD_IIN}}),
    ("Turgyn uige kezek900101300126", {"service": "housing_queue", "args": {"iin": IIN}}),
    ("TechosmotrABC", {"service": None, "error": "service_not_found"}),
    ("8123ABC01", {"service": None, "error": "service_not_found"}),
    ("5121229600011", {"service": None, "error": "service_not_found"}),
    ("4900101300126", {"service": None, "error": "service_not_found"}),
    ("4.5", {"service": None, "error": "service_not_found"}),
    ("4,5", {"service": None, "error": "service_not_found"}),
    ("4. 900101300126", {"service": "housing_queue", "args": {"iin": IIN}}),
    ("8-123ABC01", {"service": "tech_inspection", "args": {"plate": "123ABC01"}}),
]


@pytest.mark.parametrize("text, expected", GLUED)
def test_glued_keywords(text: str, expected: dict) -> None:
    """Word keywords may touch their argument; a number keyword needs a separator."""
    assert parse(text) == expected


KEYWORD_FORMS = [
    ("8", (True, "8")),
    ("Техосмотр", (False, "tehosmotr")),
    ("Techosmotr", (False, "tehosmotr")),
    ("Ochered' v detsad", (False, "oheredvdetsad")),
    ("Бала-бақшаға кезек", (False, "balabakshagakezek")),
    ("Тұрғын үйге кезек", (False, "turginuigekezek")),
    ("Ochered' na zhil'e", (False, "oherednazhile")),
]


@pytest.mark.parametrize("keyword, form", KEYWORD_FORMS)
def test_keyword_form(keyword: str, form: tuple[bool, str]) -> None:
    assert keyword_form(keyword) == form


@pytest.mark.parametrize("keyword", ["", "  ", "5a", "8 8", "你好", "٨", "!!"])
def test_a_keyword_that_cannot_be_matched_is_refused(keyword: str) -> None:
    with pytest.raises(ValueError):
        keyword_form(keyword)


class _Service:
    def __init__(self, name: str, *keywords: str) -> None:
        self.name = name
        self.syntax = Syntax(keywords, lambda rest: {"rest": rest})


BUILD_ERRORS = [
    ([_Service("a", "Ochered"), _Service("b", "Очередь")], {"1": ["a", "b"]}),
    ([_Service("a", "7"), _Service("b", "7")], {"1": ["a", "b"]}),
    ([_Service("a"), _Service("b")], {"1": ["a", "b"]}),
    ([_Service("a", "7")], {"1": ["a", "missing"]}),
    ([_Service("a", "7 7")], {"1": ["a"]}),
]


@pytest.mark.parametrize("services, shortcodes", BUILD_ERRORS)
def test_an_ambiguous_registry_is_refused_at_build(services: list, shortcodes: dict) -> None:
    with pytest.raises(ValueError):
        KeywordIndex.build(services, shortcodes)


def test_the_same_keyword_serves_different_services_on_different_shortcodes() -> None:
    index = KeywordIndex.build([_Service("a", "7"), _Service("b", "7")], {"1": ["a"], "2": ["b"]})
    assert index.parse("1", "7 x") == Command("a", {"rest": " x"})
    assert index.parse("2", "7 x") == Command("b", {"rest": " x"})


def test_a_typo_close_to_two_services_routes_to_neither() -> None:
    index = KeywordIndex.build([_Service("a", "ratings"), _Service("b", "ratingz")],
                               {"1": ["a", "b"]})
    assert index.parse("1", "ratings 1") == Command("a", {"rest": " 1"})
    assert index.parse("1", "ratinngs 1") == Command("a", {"rest": " 1"})
    assert index.parse("1", "ratingo 1") == ParseError(None, ErrorCode.SERVICE_NOT_FOUND)


def test_an_argument_error_carries_the_service() -> None:
    def refuse(rest: str) -> dict:
        raise ArgumentError(ErrorCode.SYNTAX_ERROR)

    service = _Service("a", "7")
    service.syntax = Syntax(("7",), refuse)
    index = KeywordIndex.build([service], {"1": ["a"]})
    assert index.parse("1", "7").as_dict() == {"service": "a", "error": "syntax_error"}
