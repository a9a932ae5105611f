"""Argument parsers: the part of an SMS after its keyword, validated per service.

Each takes the text after the keyword as typed (see `normalize.clean`) and
returns the JSON-ready arguments, or raises ArgumentError with the code to
report. Punctuation, emoji and spaces around an argument are ignored: a
sentence-final dot or a smiley is not part of a plate.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from parsers import registration as form
from parsers.iin import is_valid_iin
from parsers.plate import normalise_plate
from parsers.result import ArgumentError, ErrorCode

_WHITE = re.compile(r"\s+")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def _trim(rest: str) -> str:
    """`rest` without what is neither letter nor digit at either end."""
    first = _LETTER_OR_DIGIT.search(rest)
    if first is None:
        return ""
    # Searching the reversed text keeps this linear however long the tail of junk is.
    last = _LETTER_OR_DIGIT.search(rest[::-1])
    return rest[first.start():len(rest) - last.start()] if last else ""


def plate(rest: str) -> dict[str, Any]:
    """The vehicle plate of a technical inspection request."""
    value = normalise_plate(_trim(rest))
    if value is None:
        raise ArgumentError(ErrorCode.PLATE_INVALID)
    return {"plate": value}


def _iin(rest: str) -> str:
    return _WHITE.sub("", _trim(rest))


def child_iin(rest: str) -> dict[str, Any]:
    """The child's IIN of a kindergarten queue request (required)."""
    value = _iin(rest)
    if not value:
        raise ArgumentError(ErrorCode.CHILD_IIN_MISSING)
    if not is_valid_iin(value):
        raise ArgumentError(ErrorCode.CHILD_IIN_INVALID)
    return {"child_iin": value}


def optional_iin(rest: str) -> dict[str, Any]:
    """The IIN of a housing queue request; None when the sender asks about themself."""
    value = _iin(rest)
    if not value:
        return {"iin": None}
    if not is_valid_iin(value):
        raise ArgumentError(ErrorCode.IIN_INVALID)
    return {"iin": value}


def registration(text: str, today: dt.date | None = None) -> dict[str, Any]:
    """`TK,Ho va Ten,CMND,dd.mm.yyyy` (or `;`): the Da Nang e-citizen account request."""
    parts = form.fields(text)
    if parts is None:
        raise ArgumentError(ErrorCode.SYNTAX_ERROR)
    name = form.full_name(parts[0])
    id_number = form.id_number(parts[1])
    born = form.birth_date(parts[2], today or form.today_in_vietnam())
    if name is None or id_number is None or born is None:
        raise ArgumentError(ErrorCode.SYNTAX_ERROR)
    return {"full_name": name, "id_number": id_number, "birth_date": born.isoformat()}
