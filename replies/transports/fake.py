"""A transport that keeps what it is given, for unit tests; it can be told to fail."""

from __future__ import annotations

from collections import deque

from replies.transports.base import Sms, TransportError


class MemoryTransport:
    """Records every SMS in `sent`; raises the queued `failures` first, one per send."""

    def __init__(self) -> None:
        self.sent: list[Sms] = []
        self.failures: deque[TransportError] = deque()

    def send(self, sms: Sms) -> str | None:
        """Fail with the next queued failure, else record the SMS."""
        if self.failures:
            raise self.failures.popleft()
        self.sent.append(sms)
        return f"mem-{len(self.sent)}"

    def close(self) -> None:
        """Nothing to release."""
