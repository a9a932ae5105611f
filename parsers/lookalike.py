"""Look-alike letters: Cyrillic and Latin letters that the eye cannot tell apart.

Phones switch keyboard layouts, and people type what looks right: `Texocmotp`
for `Техосмотр`, `А123ВС` for a plate. These tables read a text in the other
script one letter for one letter, so that positions in the text are kept.
"""

from __future__ import annotations

# (Cyrillic, Latin) pairs that look alike in common phone fonts, either case.
_PAIRS = (
    "АA", "аa", "ВB", "ЕE", "еe", "КK", "кk", "МM", "мm", "НH", "ОO", "оo", "РP", "рp",
    "СC", "сc", "ТT", "тt", "ХX", "хx", "УY", "уy", "пn", "иu", "гr",
)

CYRILLIC_AS_LATIN = str.maketrans({cyr: lat for cyr, lat in _PAIRS})
"""Read Cyrillic look-alikes as the Latin letters they look like."""

LATIN_AS_CYRILLIC = str.maketrans({lat: cyr for cyr, lat in _PAIRS})
"""Read Latin look-alikes as the Cyrillic letters they look like."""

PLATE_LETTERS = str.maketrans(
    "АВЕКМНОРСТУХІЈЅҮавекмнорстухіјѕү",
    "ABEKMHOPCTYXIJSYABEKMHOPCTYXIJSY",
)
"""Cyrillic letters typed on a plate, either case, to the upper-case Latin letter they stand for."""
