"""The shape every service handler has: a request in, a reply outcome out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from parsers import ParseResult
from replies.reply import Reply

__all__ = ["BatchHandler", "Handler", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """One citizen's request: who sent it (E.164), what the parser made of it, and when."""

    sender: str
    parsed: ParseResult
    received_at: dt.datetime


Handler = Callable[[psycopg.Connection, Request], Reply]
BatchHandler = Callable[[psycopg.Connection, Sequence[Request]], list[Reply]]
"""A handler for many requests at once: the replies in the same order, the same as the
single handler would give each; its look-ups shared (one query per store, not per request)."""
