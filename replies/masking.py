"""Masking of personal data, for replies and logs alike."""

from __future__ import annotations

import re

# A phone number (optionally +) or IIN: 10 to 15 digits in a row.
_LONG_NUMBER = re.compile(r"(?<!\d)(\+?)(\d{4})(\d{2,7})(\d{4})(?!\d)")


def mask_digits(value: str) -> str:
    """Every phone number or IIN in `value` masked: `+77011234567` -> `+7701***4567`."""
    return _LONG_NUMBER.sub(lambda m: f"{m[1]}{m[2]}***{m[4]}", value)


def mask_plate(plate: str) -> str:
    """The series letters of a plate hidden: `123ABC01` -> `123***01`, `A123BCD` -> `A123***`."""
    if len(plate) == 8:
        return f"{plate[:3]}***{plate[6:]}"
    return f"{plate[:4]}***"
