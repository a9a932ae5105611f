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


class TransportError(Exception):
    """A send that did not go through; `retryable` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Transport(Protocol):
    """Hands an SMS to the operator; returns the operator's message id, if it gives one."""

    def send(self, sms: Sms) -> str | None: ...

    def close(self) -> None: ...
