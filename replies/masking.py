"""Masking of personal data, for replies and logs alike, and redaction of credentials in logs."""

from __future__ import annotations

import re

# A phone number (optionally +) or IIN: 10 to 15 digits in a row.
_LONG_NUMBER = re.compile(r"(?<!\d)(\+?)(\d{4})(\d{2,7})(\d{4})(?!\d)")
# The same written in groups: `+7 701 000 0001`, `8 (701) 000-00-01`, `+84-905-123-456`:
# digit groups, each maybe in brackets, joined by one space or hyphen, not after a word
# character or `+`. Every quantifier is possessive, so no text makes the engine backtrack.
_GROUPED_NUMBER = re.compile(r"(?<![\w+])(\+?)(\(?+\d++\)?+(?:[ \-]?+\(?+\d++\)?+)++)")
# userinfo of a URL: `scheme://user:PASSWORD@`, `scheme://:PASSWORD@`.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/@:]*:)([^\s/@]+)(@)")
# A secret query or form parameter, plain or percent-encoded once or twice (a dlr-url
# carried in the query of a sendsms URL): `password=...`, `token%3D...`. `text` is there
# because an SMS text may carry an issued password or a one-time code.
_SECRET_NAMES = (r"[\w\-]*(?:pass(?:word|wd)?|pwd|token|secret|key|signature|auth)[\w\-]*"
                 r"|text|udh")
_SECRET_PARAM = re.compile(
    rf"(?i)((?:^|(?<=[?&;\s\"'(])|(?<=%26)|(?<=%3F)|(?<=%2526)|(?<=%253F))(?:{_SECRET_NAMES})"
    rf"(?:=|%3D|%253D))((?:(?!&|%26|%2526)[^\s\"'<>])+)")
# `"password": "..."`, `'secret': '...'` in a dict or JSON someone logged.
_SECRET_ITEM = re.compile(
    rf"(?i)([\"'](?:{_SECRET_NAMES})[\"']\s*:\s*)(b?[\"'])((?:\\.|(?!\2).)*?)(\2)")
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")


def mask_digits(value: str) -> str:
    """Every phone number or IIN in `value` masked: `+77011234567` -> `+7701***4567`."""
    return _LONG_NUMBER.sub(lambda m: f"{m[1]}{m[2]}***{m[4]}", value)


def _mask_grouped(match: re.Match[str]) -> str:
    plus, number, rest = match[1], match[2], ""
    after = match.string[match.end():match.end() + 3]
    glued = after[:1].isalnum() or after[:1] == "_"
    if glued or (after[:1] == ":" and after[1:].isdigit()):
        # Glued to a word, or the hour of a time (`2024-05-20 12:00`): the last group is
        # not part of the number.
        cut = len(number.rstrip(")").rstrip("0123456789").rstrip(" -("))
        number, rest = number[:cut], number[cut:]
    digits = "".join(filter(str.isdigit, number))
    if not 10 <= len(digits) <= 15:
        return match[0]  # too short or too long for a phone number or an IIN
    return f"{plus}{digits[:4]}***{digits[-4:]}{rest}"


def mask_numbers(value: str) -> str:
    """Phone numbers and IINs masked, also written in groups: `8 (701) 000-00-01` -> `8701***0001`."""
    return mask_digits(_GROUPED_NUMBER.sub(_mask_grouped, value))


def redact_secrets(value: str) -> str:
    """Credentials removed: URL passwords, secret parameters (`password=`, `token=`,
    a dlr-url's token), SMS texts in URLs, `Authorization` values, `"secret": "..."`."""
    # Each pattern only where its literal part can be: most log lines have none of them.
    if "@" in value:
        value = _URL_PASSWORD.sub(r"\1***\3", value)
    if "=" in value or "%" in value:
        value = _SECRET_PARAM.sub(r"\1***", value)
    if ":" in value and ("'" in value or '"' in value):
        value = _SECRET_ITEM.sub(r"\1\2***\4", value)
    return _AUTH_HEADER.sub(r"\1 ***", value)


def mask_log(value: str) -> str:
    """What a log line may show: credentials redacted, personal numbers masked."""
    return mask_numbers(redact_secrets(value))


def mask_plate(plate: str) -> str:
    """The series letters of a plate hidden: `123ABC01` -> `123***01`, `A123BCD` -> `A123***`."""
    if len(plate) == 8:
        return f"{plate[:3]}***{plate[6:]}"
    return f"{plate[:4]}***"
