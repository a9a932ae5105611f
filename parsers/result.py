"""What the parser returns: a command for a service, or a classified parse error."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Why a text could not be turned into a command (the output contract)."""

    SERVICE_NOT_FOUND = "service_not_found"
    PLATE_INVALID = "plate_invalid"
    CHILD_IIN_MISSING = "child_iin_missing"
    CHILD_IIN_INVALID = "child_iin_invalid"
    IIN_INVALID = "iin_invalid"
    SYNTAX_ERROR = "syntax_error"


@dataclass(frozen=True, slots=True)
class Command:
    """A request for a service with its validated arguments (JSON-ready values)."""

    service: str
    args: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The output-contract form: {"service": NAME, "args": {...}}."""
        return {"service": self.service, "args": dict(self.args)}


@dataclass(frozen=True, slots=True)
class ParseError:
    """A text that names no service, or names one with a bad argument."""

    service: str | None
    error: ErrorCode

    def as_dict(self) -> dict[str, Any]:
        """The output-contract form: {"service": NAME or None, "error": CODE}."""
        return {"service": self.service, "error": str(self.error)}


ParseResult = Command | ParseError


class ArgumentError(Exception):
    """Raised by an argument parser; carries the error code to report."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(str(code))
        self.code = code
