"""Argument parsers: the part of an SMS after its keyword, validated per service."""

from __future__ import annotations

import re
from typing import Any

from parsers.iin import is_valid_iin
from parsers.plate import normalise_plate
from parsers.result import ArgumentError, ErrorCode

_SPACES = re.compile(r"\s+")


def plate(rest: str) -> dict[str, Any]:
    """The vehicle plate of a technical inspection request."""
    value = normalise_plate(rest)
    if value is None:
        raise ArgumentError(ErrorCode.PLATE_INVALID)
    return {"plate": value}


def _iin(rest: str) -> str:
    return _SPACES.sub("", rest)


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


_REGISTRATION = re.compile(r"\s*tk\s*[,;]\s*(?P<name>[^,;]+?)\s*[,;]\s*(?P<id>[0-9 ]+?)\s*[,;]"
                           r"\s*(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4})\s*", re.IGNORECASE)


def registration(text: str) -> dict[str, Any]:
    """`TK,Ho va Ten,CMND,dd.mm.yyyy` (or `;`): the Da Nang e-citizen account request."""
    import datetime as dt
    import unicodedata

    match = _REGISTRATION.fullmatch(text)
    if match is None:
        raise ArgumentError(ErrorCode.SYNTAX_ERROR)
    id_number = _SPACES.sub("", match["id"])
    if len(id_number) not in (9, 12) or not id_number.isascii():
        raise ArgumentError(ErrorCode.SYNTAX_ERROR)
    try:
        born = dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        raise ArgumentError(ErrorCode.SYNTAX_ERROR) from None
    folded = unicodedata.normalize("NFKD", match["name"].replace("đ", "d").replace("Đ", "D"))
    name = " ".join("".join(c for c in folded if not unicodedata.combining(c)).split())
    return {"full_name": name, "id_number": id_number, "birth_date": born.isoformat()}
