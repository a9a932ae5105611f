"""The file transport: one JSON object per SMS sent, appended to a JSON Lines file."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from replies.transports.base import Outcome, Sms, TransportError


class FileTransport:
    """Appends each SMS to `path`; safe for several processes and threads at once.

    An SMS that carries a password or code is written as it is kept at rest:
    `"text"` holds its sealed form and `"sealed": true` says so, so the outbox (a
    file anyone with the logs may read) never holds the credential in clear. Who
    needs the clear text (tests) opens it with the server's key:
    `replies.sealing.Sealer(key).unseal(line["text"])`, as `tests/support/gateway.py` does.
    """

    # SMS written together, with one write, and recorded together after it (a crash between
    # the write and the record flags at most that many as possible duplicates).
    window = 8

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._lock = threading.Lock()  # the senders' threads open the file once

    def send(self, sms: Sms) -> str | None:
        """Write the SMS as one line with a single O_APPEND write, so lines never interleave."""
        result = self.send_many([sms])[0]
        if isinstance(result, TransportError):
            raise result
        return result

    def send_many(self, messages: Sequence[Sms]) -> list[Outcome]:
        """Write the SMS, a line each, with a single O_APPEND write."""
        sent_at = dt.datetime.now(dt.UTC).isoformat()
        lines = "".join(json.dumps({
            "from": sms.sender, "to": sms.recipient,
            "text": sms.text if sms.sealed is None else sms.sealed, "sealed": sms.sealed is not None,
            "inbound_id": sms.inbound_id, "outbound_id": sms.outbound_id, "sent_at": sent_at,
        }, ensure_ascii=False) + "\n" for sms in messages)
        try:
            os.write(self._open(), lines.encode("utf-8"))
        except OSError as error:
            failed = TransportError(f"cannot write {self.path}: {error}", retryable=True)
            return [failed] * len(messages)
        return [None] * len(messages)

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            return self._fd

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
