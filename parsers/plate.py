"""Vehicle registration plates (ГРНЗ) in the masks `000 AAA 00` and `A 000 AAA`."""

from __future__ import annotations

import re

from parsers.lookalike import PLATE_LETTERS

_MASKS = re.compile(r"[0-9]{3}[A-Z]{3}[0-9]{2}|[A-Z][0-9]{3}[A-Z]{3}")
# Spaces and every dash a phone keyboard offers; a plate is read without them.
_DROP = re.compile(r"[\s\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d]+")


def normalise_plate(text: str) -> str | None:
    """`123ABC01` / `A123BCD` for a plate in either mask, however spaced or scripted; else None."""
    compact = _DROP.sub("", text).translate(PLATE_LETTERS)
    # ASCII before upper(): `ı`.upper() is `I` and `ﬀ`.upper() is `FF`, and neither is on a plate.
    if not compact.isascii():
        return None
    compact = compact.upper()
    return compact if _MASKS.fullmatch(compact) else None
