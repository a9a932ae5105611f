"""Kannel's `sendsms` HTTP interface (smsbox)."""

from __future__ import annotations

import http.client
import select
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import parse_qsl, quote_from_bytes, urlencode, urlsplit, urlunsplit

from replies import encoding
from replies.transports.base import Outcome, Sms, TransportError, outcome

# Kannel's DLR types: 1 delivered to the phone, 2 not delivered, 16 refused by the SMSC.
FINAL_DLR_MASK = 1 | 2 | 16
# Submits in flight at once per sending process: smsbox answers a sendsms once bearerbox
# has queued it (about 40 ms while receipts flow), so one at a time caps a process at ~25/s.
WINDOW = 8


class KannelTransport:
    """Submits each SMS with one GET to smsbox's sendsms, as UTF-8.

    Kannel splits a long text into concatenated parts itself (the sendsms-user
    needs `max-messages` > 1 and `concatenation = true`); one part the caller
    split itself (`Sms.parts` > 1) goes with its concatenation UDH. With a
    `dlr_url` template, Kannel calls it back with the delivery report:
    `{outbound_id}` and `{part}` are filled in here, Kannel's `%d` (report type)
    and the rest by smsbox. `send_many` puts up to `window` submits in flight at once,
    from threads of its own, each on a keep-alive connection of its own: the standard
    library's HTTP client, as lean as a GET can be (httpx cost the bench's load generator
    about 2 ms of CPU a request; through Kannel, the outbound worker went from 2.4 to about
    1.5 ms of CPU a reply without it).
    """

    def __init__(self, endpoint: str, username: str, password: str, *,
                 timeout_s: float = 5.0, dlr_url: str | None = None,
                 dlr_mask: int = FINAL_DLR_MASK, window: int = WINDOW) -> None:
        parts = urlsplit(endpoint)
        self._connection = partial(
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection,
            parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
        self._path = parts.path or "/cgi-bin/sendsms"
        self._auth = {"username": username, "password": password}
        self.window = max(1, window)
        self.dlr_url = dlr_url
        self.dlr_mask = dlr_mask
        self._threads = ThreadPoolExecutor(self.window, thread_name_prefix="kannel-submit")
        self._local = threading.local()  # each thread's connection
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> KannelTransport:
        """From `kannel+http://USER:PASS@HOST:PORT/cgi-bin/sendsms[?dlr-url=...&dlr-mask=19
        &window=8]`."""
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
        conn = self._connected()
        sent = False
        try:
            conn.request("GET", f"{self._path}?{self._query(sms)}")
            sent = True
            response = conn.getresponse()
            status, body = response.status, response.read()
            if response.will_close:
                self._drop(conn)
        except (OSError, http.client.HTTPException) as error:
            self._drop(conn)
            raise TransportError(f"kannel unreachable: {type(error).__name__}",
                                 retryable=True, in_doubt=sent) from error
        if status in (200, 202):
            return None
        reason = f"kannel answered {status}: {body.decode('utf-8', 'replace').strip()[:200]}"
        raise TransportError(reason, retryable=status >= 500 or status == 429)

    def _connected(self) -> http.client.HTTPConnection:
        """This thread's connection; a new one if smsbox closed the last (a socket that
        reads as ready while idle holds only its end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
            self._drop(conn)
            conn = None
        if conn is None:
            conn = self._local.conn = self._connection()
            with self._lock:
                self._open.add(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._open.discard(conn)

    def send_many(self, messages: Sequence[Sms]) -> list[Outcome]:
        """Each SMS submitted, `window` at a time in flight; their outcomes, in order."""
        if len(messages) == 1:
            return [outcome(self.send, messages[0])]
        return list(self._threads.map(partial(outcome, self.send), messages))

    def close(self) -> None:
        """Close the submit threads and every connection."""
        self._threads.shutdown()
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()
