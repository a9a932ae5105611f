"""Normalisation: make the same request look the same however it was typed.

Two forms come out of here.

- `clean(text)`: control characters become spaces and invisible format
  characters (bidi marks, joiners, soft hyphens) go. Nothing else changes, so
  argument parsers cut their argument from it and see the digits as typed.
- the word form (`fold_words`, `skeleton`): every word folded to lower-case
  Latin letters by NFKC, case folding, transliteration of Cyrillic and Kazakh
  letters, dropping diacritics, apostrophes and soft signs, and making the
  Latin spellings of one sound one letter (х = h = kh = x, ы = y = i, й = i,
  c = s), so that `Техосмотр`, `Techosmotr`, `Tehosmotr` and `Texosmotr` meet.
  Keywords are compared in this form.

Only ASCII digits are digits here: NFKC would turn fullwidth digits into
ASCII ones, so a word is folded apart from the numbers around it and any
other digit is a separator, never part of a number.
"""

from __future__ import annotations

import re
import unicodedata

WORD_SEPARATOR = "\x00"
"""Joins words so that one pass folds them all; `clean()` leaves none in a text."""

FOREIGN = "#"
"""A letter of no script the folding knows; in keyword matching it counts as a typo."""

_APOSTROPHES = "'’ʼ`‘´ʻ′ʹ＇"

# Combining marks in the ranges Latin, Cyrillic and Vietnamese text uses; a word keeps them.
_MARKS = "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"

TOKEN = re.compile(rf"(?:[^\W\d_]|[{_APOSTROPHES}{_MARKS}])+|[0-9]+")
"""A word (letters, with their marks and apostrophes) or a number (ASCII digits only)."""

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya",
    # Kazakh letters as the Russian-keyboard letters typed instead of them.
    "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h", "і": "i",
    # Ukrainian and Belarusian letters, so that a neighbour's keyboard does no harm.
    "є": "e", "ї": "i", "ґ": "g", "ў": "u", "ј": "j",
}

# Latin letters whose diacritic is a sound of its own (Czech, Turkish, Kazakh Latin) or
# whose stroke is not a combining mark.
_LATIN = {
    "č": "ch", "š": "sh", "ž": "zh", "ş": "sh", "ș": "sh", "ç": "ch", "ı": "i", "ø": "o",
    "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "æ": "ae", "œ": "oe", "þ": "th", "ŋ": "n",
}

_LONE = str.maketrans("cqjyw", "skiiv")
_NOT_LATIN = re.compile(f"[^a-z{WORD_SEPARATOR}]")


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


# Apostrophes go before NFKC too, which turns the acute accent `´` into a space and a mark.
_BEFORE_NFKC: dict[int, str | None] = {ord(a): None for a in _APOSTROPHES}


def _leads_with_a_mark(char: str) -> bool:
    """True when `char` decomposes (NFKD) into a non-starter first: it joins a run of marks."""
    if unicodedata.combining(char):
        return True
    return bool(unicodedata.decomposition(char)) and unicodedata.combining(
        unicodedata.normalize("NFKD", char)[0]) != 0


def _class_of(code_points: list[int]) -> str:
    """A regex character class body matching exactly `code_points` (sorted), as ranges."""
    ranges: list[list[int]] = []
    for cp in code_points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                   for a, b in ranges)


def _build_tables() -> tuple[dict[int, str | None], dict[int, str | None], str]:
    """The tables of `clean()` and of the letter folding, and the class of mark-led characters."""
    clean: dict[int, str | None] = {cp: " " for cp in (*range(0x20), *range(0x7F, 0xA0))}
    fold = dict(_BEFORE_NFKC)
    marks = []
    # Past 0x30000 only CJK ideographs, tags and variation selectors: no marks, nothing to fold.
    for cp in (*range(0x30000), *range(0xE0000, 0xE0080)):
        if _leads_with_a_mark(chr(cp)):
            marks.append(cp)
        category = unicodedata.category(chr(cp))
        if category == "Cf":
            clean[cp] = None
        elif category[0] == "M":
            fold[cp] = None
    clean[0x200B] = " "  # a zero-width space still separates words
    letters = {**_CYRILLIC, **_LATIN}
    for cp in (*range(0xC0, 0x250), *range(0x400, 0x530), *range(0x1E00, 0x1F00)):
        char = chr(cp)
        if char.casefold() != char:
            continue  # the folding table is used after casefold(): upper case never reaches it
        base = letters.get(char)
        if base is None:  # a Latin or Cyrillic letter with diacritics: its base letter's
            stripped = _strip_marks(char)
            base = letters.get(stripped, stripped if stripped.isascii() else None)
        if base is not None:
            fold[cp] = base
    return clean, fold, _class_of(marks)


_CLEAN, _FOLD, _MARK_LED = _build_tables()

STREAM_SAFE_RUN = 30
"""Marks in a row past which a combining grapheme joiner cuts the run (UAX #15, Stream-Safe)."""

# NFKC and NFKD sort each run of marks by insertion, quadratic in the run's length: a text of
# 10,000 marks in alternating classes would take seconds. The Stream-Safe Text Format of UAX #15
# bounds every run; no letter of any language carries 30 marks. The lookahead reads at most one
# character past the 30, so the search is linear.
_LONG_MARK_RUN = re.compile(f"[{_MARK_LED}]{{{STREAM_SAFE_RUN}}}(?=[{_MARK_LED}])")
_CGJ = "\u034f"  # a starter that changes no text's look, and is itself a mark the folding drops
# The marks that decompose into two (U+0344, three Tibetan vowel signs), decomposed first, so
# that every mark the run counts is one mark to the normalisation; NFKC decomposes them anyway.
_DOUBLE_MARKS = {cp: unicodedata.normalize("NFD", chr(cp)) for cp in (0x344, 0xF73, 0xF75, 0xF81)}


def stream_safe(text: str) -> str:
    """`text` with a combining grapheme joiner after every STREAM_SAFE_RUN marks in a row."""
    return _LONG_MARK_RUN.sub(lambda run: run.group() + _CGJ, text.translate(_DOUBLE_MARKS))


def _one_h(words: str) -> str:
    """kh, ch and x (and any run of k, c or q before them) as the one letter h they all are.

    With str methods, not a regex: `[kcq]*(?:[kcq]h|x)` restarts inside every run of k that
    no h ends, quadratic in the run; each h here strips the run before it once.
    """
    words = words.replace("x", "h")
    if "h" not in words:
        return words
    parts = words.split("h")
    return "h".join([part.rstrip("kcq") for part in parts[:-1]] + parts[-1:])


def clean(text: str) -> str:
    """`text` with control characters as spaces and invisible format characters removed."""
    if text.isascii() and text.isprintable():
        return text
    return text.translate(_CLEAN)


def is_number(token: str) -> bool:
    """True for a TOKEN that is a number rather than a word."""
    return "0" <= token[0] <= "9"


def fold_words(words: str, foreign: str = FOREIGN) -> str:
    """The word form of words joined by WORD_SEPARATOR, separators kept.

    Word characters only (as TOKEN finds them); a letter of an unknown script becomes `foreign`.
    """
    words = words.translate(_BEFORE_NFKC)
    if words.isascii():  # TOKEN's ASCII words are letters only
        words = words.lower()
    else:
        words = unicodedata.normalize("NFKC", stream_safe(words)).casefold().translate(_FOLD)
        words = _NOT_LATIN.sub(foreign, words)
    return _one_h(words).translate(_LONE)


def skeleton(text: str) -> str:
    """The comparison form of a text: words in their word form and numbers, one space apart."""
    tokens = TOKEN.findall(clean(text))
    folded = fold_words(WORD_SEPARATOR.join(t for t in tokens if not is_number(t)), foreign="")
    words = iter(folded.split(WORD_SEPARATOR))
    forms = (t if is_number(t) else next(words) for t in tokens)
    return " ".join(form for form in forms if form)
