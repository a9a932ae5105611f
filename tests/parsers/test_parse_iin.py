"""The IIN validator: 12 ASCII digits, a real birth date, century digit 1-6, the check digit."""

from __future__ import annotations

import datetime as dt

import pytest

from parsers.arguments import child_iin, optional_iin
from parsers.iin import birth_date, check_digit, is_valid_iin
from parsers.result import ArgumentError, ErrorCode
from tests.support.parser_cases import INVALID_IINS, VALID_IINS


@pytest.mark.parametrize("iin, shows", VALID_IINS)
def test_valid(iin: str, shows: str) -> None:
    assert is_valid_iin(iin)


@pytest.mark.parametrize("text, why", INVALID_IINS)
def test_invalid(text: str, why: str) -> None:
    assert not is_valid_iin(text)


CHECK_DIGITS = [
    ("90010130012", 6),  # 9+4+6+21+10+22 = 72, 72 mod 11 = 6
    ("99123140003", 8),  # first sum mod 11 is 10; second weights: 151 mod 11 = 8
    ("90010130080", None),  # both sums are 10
]


@pytest.mark.parametrize("first11, digit", CHECK_DIGITS)
def test_check_digit(first11: str, digit: int | None) -> None:
    assert check_digit(first11) == digit


BIRTH_DATES = [
    ("900101300126", dt.date(1990, 1, 1)),
    ("200515100049", dt.date(1820, 5, 15)),
    ("000229509993", dt.date(2000, 2, 29)),
    ("901301300126", None),
    ("900101700121", None),
]


@pytest.mark.parametrize("iin, born", BIRTH_DATES)
def test_birth_date(iin: str, born: dt.date | None) -> None:
    assert birth_date(iin) == born


ARGUMENTS = [
    ("900101300126", "900101300126"),
    (" 900101300126 ", "900101300126"),
    ("9001 0130 0126", "900101300126"),
    ("900101\u00a0300126", "900101300126"),
    ("900101300126.", "900101300126"),
    (": 900101300126 !", "900101300126"),
]


@pytest.mark.parametrize("rest, iin", ARGUMENTS)
def test_iin_arguments_tolerate_spaces_and_edge_punctuation(rest: str, iin: str) -> None:
    assert optional_iin(rest) == {"iin": iin}
    assert child_iin(rest) == {"child_iin": iin}


ARGUMENT_ERRORS = [
    ("", {"iin": None}, ErrorCode.CHILD_IIN_MISSING),
    ("  .  ", {"iin": None}, ErrorCode.CHILD_IIN_MISSING),
    ("900101300127", ErrorCode.IIN_INVALID, ErrorCode.CHILD_IIN_INVALID),
    ("9001-0130-0126", ErrorCode.IIN_INVALID, ErrorCode.CHILD_IIN_INVALID),
    ("IIN 900101300126", ErrorCode.IIN_INVALID, ErrorCode.CHILD_IIN_INVALID),
    ("９００１０１３００１２６", ErrorCode.IIN_INVALID, ErrorCode.CHILD_IIN_INVALID),
]


@pytest.mark.parametrize("rest, housing, kindergarten", ARGUMENT_ERRORS)
def test_iin_argument_errors(rest: str, housing: object, kindergarten: ErrorCode) -> None:
    if isinstance(housing, ErrorCode):
        with pytest.raises(ArgumentError) as error:
            optional_iin(rest)
        assert error.value.code == housing
    else:
        assert optional_iin(rest) == housing
    with pytest.raises(ArgumentError) as error:
        child_iin(rest)
    assert error.value.code == kindergarten
