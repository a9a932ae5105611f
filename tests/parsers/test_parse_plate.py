"""The plate validator: masks `000 AAA 00` and `A 000 AAA`, Cyrillic look-alikes, spacing."""

from __future__ import annotations

import pytest

from parsers.arguments import plate
from parsers.plate import normalise_plate
from parsers.result import ArgumentError, ErrorCode
from tests.support.parser_cases import BAD_PLATES, PLATES


@pytest.mark.parametrize("typed, expected", PLATES)
def test_plate(typed: str, expected: str) -> None:
    assert normalise_plate(typed) == expected


@pytest.mark.parametrize("typed, why", BAD_PLATES)
def test_bad_plate(typed: str, why: str) -> None:
    assert normalise_plate(typed) is None


@pytest.mark.parametrize("rest, expected", [(" 123ABC01", "123ABC01"), ("123 ABC 01.", "123ABC01"),
                                            (": A123BCD 🚗", "A123BCD")])
def test_plate_argument(rest: str, expected: str) -> None:
    assert plate(rest) == {"plate": expected}


@pytest.mark.parametrize("rest", ["", "  ", "?", "12ABC01", "١٢٣ABC٠١"])
def test_plate_argument_error(rest: str) -> None:
    with pytest.raises(ArgumentError) as error:
        plate(rest)
    assert error.value.code == ErrorCode.PLATE_INVALID
