"""The Kazakhstan individual identification number (IIN)."""

from __future__ import annotations

import datetime as dt
import re

_WEIGHTS = (tuple(range(1, 12)), (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2))
_CENTURY = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}
# `\d` and int() also take Arabic-Indic and fullwidth digits; an IIN has ASCII ones only.
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def check_digit(first11: str) -> int | None:
    """The control digit for the first 11 digits, or None when no digit fits."""
    digits = [int(c) for c in first11]
    for weights in _WEIGHTS:
        rest = sum(d * w for d, w in zip(digits, weights)) % 11
        if rest != 10:
            return rest
    return None


def birth_date(iin: str) -> dt.date | None:
    """The birth date an IIN encodes, or None when it encodes no real date."""
    century = _CENTURY.get(iin[6:7])
    if century is None:
        return None
    try:
        return dt.date(century + int(iin[0:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        return None


def is_valid_iin(value: str) -> bool:
    """True for 12 ASCII digits with a real birth date, century digit 1-6 and a good check digit."""
    if _TWELVE_DIGITS.fullmatch(value) is None:
        return False
    return birth_date(value) is not None and check_digit(value[:11]) == int(value[11])
