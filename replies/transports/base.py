"""The protocol every outbound transport implements, and its classified error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Sms:
    """One mobile-terminated SMS as the transport sees it."""

    outbound_id: int
    inbound_id: int | None
    sender: str
    recipient: str
    text: str
    # One part of a concatenated SMS the caller split itself (replies.encoding.split):
    # part `part` of `parts`, all parts sharing `reference` (0-255) and `coding`
    # (the whole text's: "gsm7" or "ucs2"). With parts=1 a long text is split by
    # the transport.
    part: int = 1
    parts: int = 1
    reference: int | None = None
    coding: str | None = None
    # The text as kept at rest when it carries a password or code: sealed (encrypted,
    # replies.sealing). A transport that keeps what it sends (the file transport) keeps
    # this, never `text`; one that hands the SMS to an operator sends `text`.
    sealed: str | None = None


class TransportError(Exception):
    """A send that did not go through; `retryable` says whether trying again may help.

    `in_doubt`: the operator may have taken the SMS all the same (its answer never
    came), so sending it again may deliver it twice.
    """

    def __init__(self, reason: str, *, retryable: bool, in_doubt: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.in_doubt = in_doubt


class RateLimited(TransportError):
    """The link holds the SMS back for `retry_after` seconds: its rate limit, the operator's,
    or a submit answer still awaited. Always retryable, and not a failed attempt."""

    def __init__(self, reason: str, *, retry_after: float, in_doubt: bool = False) -> None:
        super().__init__(reason, retryable=True, in_doubt=in_doubt)
        self.retry_after = retry_after


class Transport(Protocol):
    """Hands an SMS to the operator; returns the operator's message id, if it gives one.

    A transport may say how many SMS it takes at once (`window`, 1 when it says nothing) and
    take them with `send_many` (its submits in flight together); the deliver step then
    hands it `window` parts at a time and records their outcomes together.
    """

    def send(self, sms: Sms) -> str | None: ...

    def close(self) -> None: ...


Outcome = str | None | TransportError
"""What became of one SMS handed to a transport: the operator's id (or None), or why not."""


def outcome(send: Callable[[Sms], str | None], sms: Sms) -> Outcome:
    """`send(sms)`, its TransportError returned rather than raised."""
    try:
        return send(sms)
    except TransportError as error:
        return error


def send_many(transport: Transport, messages: Sequence[Sms]) -> list[Outcome]:
    """The outcome of each SMS, in order: by the transport's own `send_many` where it has
    one, else one `send` after another."""
    many = getattr(transport, "send_many", None)
    if many is not None:
        return many(messages)
    return [outcome(transport.send, sms) for sms in messages]
