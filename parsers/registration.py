"""The Da Nang e-citizen account request (8188): `TK,Ho va Ten,CMND,ngaysinh`.

Fields are separated by `,` or `;` (the seed lets the citizen choose, so each
separator may be either), with spaces allowed around them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from parsers.normalize import stream_safe

_SEPARATOR = re.compile(r"[,;]")
_WHITE = re.compile(r"\s+")
_NAME = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
_NAME_MAX = 100  # longer is no one's name; it keeps junk out of the account store
_ID_NUMBER = re.compile(r"[0-9]{9}|[0-9]{12}")  # CMND (9 digits) or CCCD citizen card (12)
_DATE = re.compile(r"([0-9]{1,2})[./]([0-9]{1,2})[./]([0-9]{4})\.?")
_OLDEST = 1900
_VIETNAM = dt.timezone(dt.timedelta(hours=7))
# Letters with a stroke rather than a combining mark: NFKD leaves them whole.
_STROKES = str.maketrans("đĐðÐ", "dDdD")


def fields(text: str) -> tuple[str, str, str] | None:
    """The name, id number and birth date fields of a `TK` request, unchecked; None if not one."""
    parts = _SEPARATOR.split(text)
    if len(parts) < 4 or parts[0].strip().lower() != "tk":
        return None
    if any(part.strip() for part in parts[4:]):  # trailing separators are harmless, more fields not
        return None
    return parts[1], parts[2], parts[3]


def full_name(field: str) -> str | None:
    """The name without diacritics (`Nguyễn Văn Đức` -> `Nguyen Van Duc`), spaces collapsed."""
    # Stream-safe first: NFKD is quadratic in a run of marks; a cut run is no name, and fails below.
    decomposed = unicodedata.normalize("NFKD", stream_safe(field.translate(_STROKES)))
    name = " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())
    if len(name) > _NAME_MAX or _NAME.fullmatch(name) is None:
        return None
    return name


def id_number(field: str) -> str | None:
    """The CMND (9 ASCII digits) or citizen card number (12), spaces inside allowed."""
    value = _WHITE.sub("", field)
    return value if _ID_NUMBER.fullmatch(value) else None


def today_in_vietnam() -> dt.date:
    """Today's date in Da Nang, where the citizen was born no later than today."""
    return dt.datetime.now(_VIETNAM).date()


def birth_date(field: str, today: dt.date) -> dt.date | None:
    """A real date `dd.mm.yyyy` or `dd/mm/yyyy`, from 1900 to `today`."""
    match = _DATE.fullmatch(field.strip())
    if match is None:
        return None
    day, month, year = (int(group) for group in match.groups())
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return None
    return born if _OLDEST <= year and born <= today else None
