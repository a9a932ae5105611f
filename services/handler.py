"""The shape every service handler has: a request in, a reply outcome out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from parsers import ParseResult


@dataclass(frozen=True, slots=True)
class Request:
    """One citizen's request: who sent it (E.164), what the parser made of it, and when."""

    sender: str
    parsed: ParseResult
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply outcome of a service; `replies/` turns it into text."""

    service: str
    outcome: str
    params: Mapping[str, Any] = field(default_factory=dict)
    sealed: bool = False  # the text carries a password or code: encrypted at rest, never logged


Handler = Callable[[psycopg.Connection, Request], Reply]
