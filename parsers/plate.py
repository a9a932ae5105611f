"""Vehicle registration plates (ГРНЗ) in the masks `000 AAA 00` and `A 000 AAA`."""

from __future__ import annotations

import re

# Cyrillic letters that look like the Latin letters used on plates.
_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")
_MASKS = (re.compile(r"[0-9]{3}[A-Z]{3}[0-9]{2}"), re.compile(r"[A-Z][0-9]{3}[A-Z]{3}"))
_DROP = re.compile(r"[\s\-]+")


def normalise_plate(text: str) -> str | None:
    """`123ABC01` / `A123BCD` for a plate in either mask, however spaced or scripted; else None."""
    compact = _DROP.sub("", text).upper().translate(_LOOKALIKES)
    if any(mask.fullmatch(compact) for mask in _MASKS):
        return compact
    return None
