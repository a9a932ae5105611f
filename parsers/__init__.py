"""Pure functions from (short code, text) to a typed command or a typed parse error. No I/O."""

from parsers.keywords import KeywordIndex, Syntax
from parsers.result import ArgumentError, Command, ErrorCode, ParseError, ParseResult

__all__ = [
    "ArgumentError", "Command", "ErrorCode", "KeywordIndex", "ParseError", "ParseResult", "Syntax",
]
