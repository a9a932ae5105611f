"""The keyword index: which service a text asks for, per short code.

A text names a service by its first words. They are compared with the
keywords in the word form of `normalize`, spaces ignored (`Бала бакша`,
`Балабакша` and `Bala-baksha` meet), and in this order, the first that
matches deciding:

1. exactly, in the text as typed or read in the other script (`Texocmotp`);
2. exactly, but glued to the letters that follow (`TechosmotrA123BCD`): only
   if the argument then parses, since a longer word is usually another word;
3. within one typo (keywords of 6+ letters): only if one service is that close.

A number keyword (`8`) must be the whole first number and be followed by a
separator: `8123ABC01`, `45`, `4a` and `4.5` name nothing. The argument is the cleaned
text after the keyword, as typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from parsers.distance import within_one_edit
from parsers.lookalike import CYRILLIC_AS_LATIN, LATIN_AS_CYRILLIC
from parsers.normalize import FOREIGN, TOKEN, WORD_SEPARATOR, clean, fold_words, is_number
from parsers.result import ArgumentError, Command, ErrorCode, ParseError, ParseResult

ArgumentParser = Callable[[str], dict[str, Any]]

_FUZZY_FROM = 6  # a typo in a shorter keyword makes another word too often
_MAX_WORDS = 8  # keywords have up to three words; room for them split up further
_READINGS = (LATIN_AS_CYRILLIC, CYRILLIC_AS_LATIN)
_NOT_FOUND = ParseError(None, ErrorCode.SERVICE_NOT_FOUND)
_CUT_MARK = "\ufffd\ufffd"  # folds to two FOREIGN letters


@dataclass(frozen=True, slots=True)
class Syntax:
    """How a service is asked for: its keywords in every language and its argument parser.

    A syntax with no keywords takes every text sent to its short code.
    """

    keywords: tuple[str, ...]
    argument: ArgumentParser


class Named(Protocol):
    """A service registry entry, as far as the parser is concerned."""

    @property
    def name(self) -> str: ...

    @property
    def syntax(self) -> Syntax: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    service: str
    argument: ArgumentParser

    def apply(self, rest: str) -> ParseResult:
        """The command with its argument parsed from `rest`, or the argument's error."""
        try:
            return Command(self.service, self.argument(rest))
        except ArgumentError as error:
            return ParseError(self.service, error.code)


def keyword_form(keyword: str) -> tuple[bool, str]:
    """(is a number, compared form): `8` -> (True, "8"), `Ochered' v d` -> (False, "oheredvd")."""
    tokens = TOKEN.findall(clean(keyword))
    if len(tokens) == 1 and is_number(tokens[0]):
        return True, tokens[0]
    if tokens and not any(is_number(token) for token in tokens):
        form = fold_words(WORD_SEPARATOR.join(tokens)).replace(WORD_SEPARATOR, "")
        if form and FOREIGN not in form:
            return False, form
    raise ValueError(f"keyword {keyword!r} is neither one number nor Latin or Cyrillic words")


@dataclass(frozen=True, slots=True)
class _Words:
    """The first words of a text in one reading: their forms run together, and where each ends."""

    reading: dict[int, str] | None
    compact: str
    ends: tuple[tuple[int, int], ...]  # (length of `compact` up to the word's end, word index)


class _Table:
    """The keywords of the services one short code serves."""

    def __init__(self, services: Sequence[Named]) -> None:
        self.numbers: dict[str, _Entry] = {}
        self.words: dict[str, _Entry] = {}
        self.catch_all: _Entry | None = None
        for service in services:
            entry = _Entry(service.name, service.syntax.argument)
            if not service.syntax.keywords:
                if self.catch_all is not None:
                    raise ValueError(f"{self.catch_all.service} and {service.name} both take "
                                     "every text of one short code")
                self.catch_all = entry
            for keyword in service.syntax.keywords:
                number, form = keyword_form(keyword)
                index = self.numbers if number else self.words
                other = index.setdefault(form, entry)
                if other.service != service.name:
                    raise ValueError(f"keyword {keyword!r} of {service.name} is one of "
                                     f"{other.service}'s")
        self.longest_first = sorted(self.words.items(), key=lambda item: -len(item[0]))
        self.longest = len(self.longest_first[0][0]) if self.longest_first else 0
        # Raw characters of a word that can hold a keyword: a letter typed as up to four
        # (a letter, its marks, apostrophes, a k before h), and room for a few more. Only this
        # window of each first word is folded, so matching costs the same for any text length.
        self.window = 4 * self.longest + 16
        self.by_length: dict[int, list[tuple[str, _Entry]]] = {}
        for form, entry in self.longest_first:
            if len(form) >= _FUZZY_FROM:
                self.by_length.setdefault(len(form), []).append((form, entry))

    def match(self, text: str) -> ParseResult | None:
        """The result for the keyword `text` starts with, or None when it starts with none."""
        tokens = TOKEN.finditer(text)
        first = next(tokens, None)
        if first is None:
            return None
        if is_number(first.group()):
            entry = self.numbers.get(first.group())
            end = first.end()
            if entry is None or _glued_number(text, end):
                return None
            return entry.apply(text[end:])
        if not self.words:
            return None
        spans = [first]
        size = first.end() - first.start()
        for token in tokens:
            if is_number(token.group()) or len(spans) == _MAX_WORDS or size > self.window:
                break
            spans.append(token)
            size += token.end() - token.start()
        raws = [span.group()[:self.window] for span in spans]
        # A word cut at the window ends in two foreign letters: never a keyword, not even a typo
        # of one, yet a keyword glued to the start of its window is still found.
        joined = WORD_SEPARATOR.join(
            raw if len(raw) == span.end() - span.start() else raw + _CUT_MARK
            for raw, span in zip(raws, spans))
        direct = self._words(None, fold_words(joined))
        result = self._exact(direct, spans, text)  # the common case, so the other readings wait
        if result is not None:
            return result
        readings = [direct]
        for table in _READINGS:
            read = joined.translate(table)
            if read != joined:
                readings.append(self._words(table, fold_words(read)))
        for words in readings[1:]:
            result = self._exact(words, spans, text)
            if result is not None:
                return result
        for words in readings:
            result = self._glued(words, raws, spans, text)
            if result is not None:
                return result
        return self._typo(readings, spans, text)

    def _words(self, reading: dict[int, str] | None, folded: str) -> _Words:
        compact = ""
        ends = []
        for index, form in enumerate(folded.split(WORD_SEPARATOR)):
            if form:
                compact += form
                ends.append((len(compact), index))
                if len(compact) > self.longest:
                    break
        return _Words(reading, compact, tuple(ends))

    def _exact(self, words: _Words, spans: list[re.Match[str]], text: str) -> ParseResult | None:
        """The longest keyword the first words are, exactly."""
        for end, index in reversed(words.ends):
            entry = self.words.get(words.compact[:end])
            if entry is not None:
                return entry.apply(text[spans[index].end():])
        return None

    def _glued(self, words: _Words, raws: list[str], spans: list[re.Match[str]],
               text: str) -> ParseResult | None:
        """A keyword that ends inside a word, taken only when the rest is a valid argument."""
        start = 0
        for end, index in words.ends:
            for form, entry in self.longest_first:
                if not start < len(form) < end or not words.compact.startswith(form[:-1]):
                    continue
                cut = _cut(raws[index], form[start:], words.reading)
                if cut is not None:
                    result = entry.apply(text[spans[index].start() + cut:])
                    if isinstance(result, Command):
                        return result
            start = end
        return None

    def _typo(self, readings: list[_Words], spans: list[re.Match[str]],
              text: str) -> ParseResult | None:
        """The one service whose keyword is one typo away from the first words, if only one is."""
        hits: list[tuple[_Entry, int]] = []
        for words in readings:
            for end, index in words.ends:
                typed = words.compact[:end]
                for length in (end - 1, end, end + 1):
                    for form, entry in self.by_length.get(length, ()):
                        if within_one_edit(form, typed):
                            hits.append((entry, index))
        if not hits or any(entry.service != hits[0][0].service for entry, _ in hits):
            return None
        return hits[0][0].apply(text[spans[hits[0][1]].end():])


def _glued_number(text: str, end: int) -> bool:
    """True when the number ending at `end` goes on: `45`, `4a`, or a decimal like `4.5`, `4,5`."""
    after = text[end:end + 2]
    return after[:1].isalnum() or (after[:1] in (".", ",") and after[1:2].isdigit())


def _cut(raw: str, tail: str, reading: dict[int, str] | None) -> int | None:
    """How many characters of the word `raw` fold to `tail` (the keyword's end), if some do."""
    if reading is not None:
        raw = raw.translate(reading)
    for cut in range(1, len(raw)):
        folded = fold_words(raw[:cut])
        if folded == tail:
            return cut
        if len(folded) > len(tail) + 1:
            return None
    return None


class KeywordIndex:
    """The keyword tables of every short code."""

    def __init__(self, tables: Mapping[str, _Table]) -> None:
        self._tables = dict(tables)

    @classmethod
    def build(cls, services: Iterable[Named],
              shortcodes: Mapping[str, Sequence[str]]) -> KeywordIndex:
        """Index `services` for each short code that `shortcodes` maps to their names."""
        by_name = {service.name: service for service in services}
        tables = {}
        for code, names in shortcodes.items():
            unknown = [name for name in names if name not in by_name]
            if unknown:
                raise ValueError(f"short code {code}: no service named {', '.join(unknown)}")
            tables[code] = _Table([by_name[name] for name in names])
        return cls(tables)

    def parse(self, shortcode: str, text: str) -> ParseResult:
        """The command `text` sent to `shortcode` asks for, or why it asks for none."""
        table = self._tables.get(shortcode)
        if table is None:
            return _NOT_FOUND
        text = clean(text)
        if table.numbers or table.words:
            result = table.match(text)
            if result is not None:
                return result
        if table.catch_all is not None:
            return table.catch_all.apply(text)
        return _NOT_FOUND
