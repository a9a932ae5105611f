"""Kannel's `sendsms` HTTP interface (smsbox)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from replies.transports.base import Sms, TransportError


def _is_gsm_basic(text: str) -> bool:
    # Kannel picks the coding from `coding`; anything outside Latin-1 needs UCS-2.
    return all(ord(c) < 0x100 for c in text)


class KannelTransport:
    """Submits each SMS with one GET to smsbox's sendsms, as UTF-8."""

    def __init__(self, endpoint: str, username: str, password: str, *,
                 timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        self.endpoint = endpoint
        self._auth = {"username": username, "password": password}
        self._client = client or httpx.Client(timeout=timeout_s)

    @classmethod
    def from_url(cls, url: str) -> KannelTransport:
        """From `kannel+http://USER:PASS@HOST:PORT/cgi-bin/sendsms`."""
        parts = urlsplit(url)
        scheme = parts.scheme.removeprefix("kannel+")
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        endpoint = urlunsplit((scheme, netloc, parts.path or "/cgi-bin/sendsms", "", ""))
        return cls(endpoint, parts.username or "", parts.password or "")

    def send(self, sms: Sms) -> str | None:
        """202 (or 200) with `0: Accepted` / `3: Queued` is success; 4xx is final; the rest retries."""
        params = {
            **self._auth, "from": sms.sender, "to": sms.recipient, "text": sms.text,
            "charset": "UTF-8", "coding": "0" if _is_gsm_basic(sms.text) else "2",
        }
        try:
            response = self._client.get(self.endpoint, params=params)
        except httpx.HTTPError as error:
            raise TransportError(f"kannel unreachable: {type(error).__name__}",
                                 retryable=True) from error
        if response.status_code in (200, 202):
            return None
        reason = f"kannel answered {response.status_code}: {response.text.strip()[:200]}"
        retryable = response.status_code >= 500 or response.status_code == 429
        raise TransportError(reason, retryable=retryable)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
