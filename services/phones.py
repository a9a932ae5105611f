"""Phone numbers in one form, E.164, however the operator or a registry wrote them."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str, region: str) -> str | None:
    """`87011234567` or `+7 701 123 45 67` (region KZ) -> `+77011234567`; None if not a number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
