"""The keyword index: which service a text asks for, per short code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from parsers.normalize import skeleton, skeleton_with_map
from parsers.result import ArgumentError, Command, ErrorCode, ParseError, ParseResult

ArgumentParser = Callable[[str], dict[str, Any]]


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
    skeleton: str
    service: str
    argument: ArgumentParser


class KeywordIndex:
    """Keywords of the services each short code serves, longest first."""

    def __init__(self, by_shortcode: Mapping[str, Sequence[_Entry]],
                 catch_all: Mapping[str, _Entry]) -> None:
        self._by_shortcode = by_shortcode
        self._catch_all = catch_all

    @classmethod
    def build(cls, services: Iterable[Named],
              shortcodes: Mapping[str, Sequence[str]]) -> KeywordIndex:
        """Index `services` for each short code that `shortcodes` maps to their names."""
        by_name = {service.name: service for service in services}
        by_shortcode: dict[str, list[_Entry]] = {}
        catch_all: dict[str, _Entry] = {}
        for code, names in shortcodes.items():
            entries = by_shortcode.setdefault(code, [])
            for name in names:
                service = by_name[name]
                if not service.syntax.keywords:
                    catch_all[code] = _Entry("", name, service.syntax.argument)
                for keyword in service.syntax.keywords:
                    entries.append(_Entry(skeleton(keyword), name, service.syntax.argument))
            entries.sort(key=lambda e: len(e.skeleton), reverse=True)
        return cls(by_shortcode, catch_all)

    def parse(self, shortcode: str, text: str) -> ParseResult:
        """The command `text` sent to `shortcode` asks for, or why it asks for none."""
        folded, source = skeleton_with_map(text)
        for entry in self._by_shortcode.get(shortcode, ()):
            rest = _rest_after(entry.skeleton, folded, source, text)
            if rest is not None:
                return _apply(entry, rest)
        entry = self._catch_all.get(shortcode)
        if entry is not None:
            return _apply(entry, text)
        return ParseError(None, ErrorCode.SERVICE_NOT_FOUND)


def _rest_after(keyword: str, folded: str, source: list[int], text: str) -> str | None:
    """The original text after `keyword`, or None when the text does not start with it."""
    if not folded.startswith(keyword):
        return None
    end = len(keyword)
    if end == len(folded):
        return ""
    glued = folded[end] != " "
    if glued and (keyword.isdigit() or folded[end - 1].isdigit() == folded[end].isdigit()):
        # Digit keywords need a separator; a word keyword may be glued only to a digit.
        return None
    return text[source[end]:] if glued else text[source[end + 1]:]


def _apply(entry: _Entry, rest: str) -> ParseResult:
    try:
        return Command(entry.service, entry.argument(rest))
    except ArgumentError as error:
        return ParseError(entry.service, error.code)
