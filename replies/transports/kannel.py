"""Kannel's `sendsms` HTTP interface (smsbox)."""

from __future__ import annotations

import http.client
import select
import threading
import time
from collections.abc import Sequence
from functools import partial
from urllib.parse import parse_qsl, quote_from_bytes, urlencode, urlsplit, urlunsplit

from replies import encoding
from replies.transports.base import Outcome, Sms, TransportError

# Kannel's DLR types: 1 delivered to the phone, 2 not delivered, 16 refused by the SMSC.
FINAL_DLR_MASK = 1 | 2 | 16
# Submits in flight at once per sending process. smsbox answers a sendsms only once
# bearerbox has queued the SMS: 40-150 ms while MOs and receipts flow, so a process with
# 8 in flight capped at about 100 replies a second, and 64 keep up with a full link.
WINDOW = 64


class KannelTransport:
    """Submits each SMS with one GET to smsbox's sendsms, as UTF-8.

    Kannel splits a long text into concatenated parts itself (the sendsms-user
    needs `max-messages` > 1 and `concatenation = true`); one part the caller
    split itself (`Sms.parts` > 1) goes with its concatenation UDH. With a
    `dlr_url` template, Kannel calls it back with the delivery report:
    `{outbound_id}` and `{part}` are filled in here, Kannel's `%d` (report type)
    and the rest by smsbox.

    `send_many` puts up to `window` submits in flight at once without a thread: each GET is
    written on a keep-alive connection of its own, then the answers are read in turn, so a
    window costs about the slowest answer, not their sum. The standard library's HTTP
    client, as lean as a GET can be (httpx cost the bench's load generator about 2 ms of
    CPU a request).
    """

    def __init__(self, endpoint: str, username: str, password: str, *,
                 timeout_s: float = 5.0, dlr_url: str | None = None,
                 dlr_mask: int = FINAL_DLR_MASK, window: int = WINDOW) -> None:
        parts = urlsplit(endpoint)
        self._connection = partial(
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection,
            parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
        self._path = parts.path or "/cgi-bin/sendsms"
        self._timeout_s = timeout_s
        self._auth = {"username": username, "password": password}
        self.window = max(1, window)
        self.dlr_url = dlr_url
        self.dlr_mask = dlr_mask
        self._idle: list[http.client.HTTPConnection] = []  # open, no request on them
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> KannelTransport:
        """From `kannel+http://USER:PASS@HOST:PORT/cgi-bin/sendsms[?dlr-url=...&dlr-mask=19
        &window=64]`."""
        parts = urlsplit(url)
        scheme = parts.scheme.removeprefix("kannel+")
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        endpoint = urlunsplit((scheme, netloc, parts.path or "/cgi-bin/sendsms", "", ""))
        query = dict(parse_qsl(parts.query))
        return cls(endpoint, parts.username or "", parts.password or "",
                   dlr_url=query.get("dlr-url"),
                   dlr_mask=int(query.get("dlr-mask", FINAL_DLR_MASK)),
                   window=int(query.get("window", WINDOW)))

    def _query(self, sms: Sms) -> str:
        coding = sms.coding or encoding.coding_of(sms.text)
        params = {
            **self._auth, "from": sms.sender, "to": sms.recipient, "text": sms.text,
            "charset": "UTF-8", "coding": "0" if coding == "gsm7" else "2",
        }
        if self.dlr_url:
            params["dlr-mask"] = str(self.dlr_mask)
            params["dlr-url"] = self.dlr_url.format(outbound_id=sms.outbound_id, part=sms.part)
        query = urlencode(params)
        if sms.parts > 1:
            # Binary UDH, percent-encoded octet by octet (httpx would UTF-8 encode a str).
            reference = sms.outbound_id & 0xFF if sms.reference is None else sms.reference
            udh = encoding.concat_udh(reference, sms.parts, sms.part)
            query += "&udh=" + quote_from_bytes(udh, safe="")
        return query

    def send(self, sms: Sms) -> str | None:
        """202 (or 200) with `0: Accepted` / `3: Queued` is success; 4xx is final; the rest retries.

        A request sent but not answered (a timeout, a connection lost) is in doubt: smsbox
        may have queued the SMS."""
        result = self.send_many([sms])[0]
        if isinstance(result, TransportError):
            raise result
        return result

    def send_many(self, messages: Sequence[Sms]) -> list[Outcome]:
        """Each SMS submitted, `window` at a time in flight; their outcomes, in order."""
        outcomes: list[Outcome] = []
        for n in range(0, len(messages), self.window):
            asked: list[http.client.HTTPConnection | TransportError] = []
            for sms in messages[n:n + self.window]:
                # smsbox unreachable (each connect may take the whole timeout): the rest of
                # the window is not tried, and goes back to the queue with the same error.
                failed = bool(asked) and isinstance(asked[-1], TransportError)
                asked.append(asked[-1] if failed else self._ask(sms))
            until = time.monotonic() + self._timeout_s  # the whole window's, not each answer's
            outcomes += [self._answer(a, until) if isinstance(a, http.client.HTTPConnection)
                         else a for a in asked]
        return outcomes

    def _ask(self, sms: Sms) -> http.client.HTTPConnection | TransportError:
        """The GET written on a connection of its own (nothing read yet), or why it was not."""
        conn = self._take()
        try:
            conn.request("GET", f"{self._path}?{self._query(sms)}")
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            return TransportError(f"kannel unreachable: {type(error).__name__}", retryable=True)
        return conn

    def _answer(self, conn: http.client.HTTPConnection, until: float) -> Outcome:
        """smsbox's answer to the GET written on `conn`, if it comes before `until`; the
        connection kept for the next."""
        try:
            if conn.sock is not None:
                conn.sock.settimeout(max(until - time.monotonic(), 0.001))
            response = conn.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            return TransportError(f"kannel unreachable: {type(error).__name__}",
                                  retryable=True, in_doubt=True)
        if response.will_close or conn.sock is None:
            conn.close()
        else:
            conn.sock.settimeout(self._timeout_s)
            with self._lock:
                self._idle.append(conn)
        if status in (200, 202):
            return None
        reason = f"kannel answered {status}: {body.decode('utf-8', 'replace').strip()[:200]}"
        return TransportError(reason, retryable=status >= 500 or status == 429)

    def _take(self) -> http.client.HTTPConnection:
        """An idle connection, or a new one; one smsbox closed while it was idle (its socket
        reads as ready: only the end is there) is dropped."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connection()
            if conn.sock is not None and not select.select([conn.sock], [], [], 0)[0]:
                return conn
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
