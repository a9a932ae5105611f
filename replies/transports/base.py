"""The protocol every outbound transport implements, and its classified error."""

from __future__ import annotations

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


class TransportError(Exception):
    """A send that did not go through; `retryable` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class RateLimited(TransportError):
    """The link's rate limit (ours or the operator's) holds the SMS back; always retryable."""

    def __init__(self, reason: str, *, retry_after: float) -> None:
        super().__init__(reason, retryable=True)
        self.retry_after = retry_after


class Transport(Protocol):
    """Hands an SMS to the operator; returns the operator's message id, if it gives one."""

    def send(self, sms: Sms) -> str | None: ...

    def close(self) -> None: ...
