"""Normalisation: make the same request look the same however it was typed.

`skeleton()` folds a text to a comparison form (lower-case Latin, one space
between words, no apostrophes) and keeps, for every character of the result,
the index of the character of the original text it came from, so that a
keyword can be matched on the skeleton and the argument cut from the original.
"""

from __future__ import annotations

import unicodedata

# Kazakh letters and the Russian-keyboard letters people type instead.
_KAZAKH = str.maketrans("әғқңөұүһі", "агкноуухи")

# Cyrillic to Latin, one way of many; the digraph rules below make the others meet it.
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "iu",
    "я": "ia",
}

# Latin spellings of one Cyrillic sound folded to one form, longest first.
_DIGRAPHS = (("kh", "h"), ("ch", "h"), ("x", "h"), ("j", "i"), ("y", "i"), ("w", "v"))

_APOSTROPHES = frozenset("'’ʼ`‘´ʻ\"")


def _chars(text: str) -> list[tuple[str, int]]:
    """Fold character by character, keeping the source index of each output character."""
    out: list[tuple[str, int]] = []
    for index, raw in enumerate(text):
        for ch in unicodedata.normalize("NFKC", raw).casefold():
            ch = ch.translate(_KAZAKH)
            if ch in _APOSTROPHES or unicodedata.category(ch) in ("Mn", "Cf"):
                continue
            latin = _CYRILLIC.get(ch)
            if latin is not None:
                out.extend((c, index) for c in latin)
            elif ch.isalnum() and (ch.isascii() or not ch.isdigit()):
                out.extend((c, index) for c in _strip_marks(ch))
            else:
                out.append((" ", index))
    return out


def _strip_marks(ch: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))


def skeleton_with_map(text: str) -> tuple[str, list[int]]:
    """The skeleton of `text` and, per skeleton character, its index in `text`."""
    chars = _chars(text)
    folded: list[tuple[str, int]] = []
    i = 0
    while i < len(chars):
        for pair, single in _DIGRAPHS:
            n = len(pair)
            if "".join(c for c, _ in chars[i:i + n]) == pair:
                folded.append((single, chars[i][1]))
                i += n
                break
        else:
            c, src = chars[i]
            if not (c == " " and (not folded or folded[-1][0] == " ")):
                folded.append((c, src))
            i += 1
    while folded and folded[-1][0] == " ":
        folded.pop()
    return "".join(c for c, _ in folded), [src for _, src in folded]


def skeleton(text: str) -> str:
    """The comparison form of `text`: `Техосмотр`, `Techosmotr` and `Texosmotr` meet."""
    return skeleton_with_map(text)[0]
