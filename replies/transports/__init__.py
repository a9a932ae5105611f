"""Outbound transports, each behind the one small protocol of `base`, chosen by URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from replies.transports.base import RateLimited, Sms, Transport, TransportError
from replies.transports.file import FileTransport
from replies.transports.kannel import KannelTransport
from replies.transports.throttle import Connect, connect_plain

__all__ = ["FileTransport", "KannelTransport", "RateLimited", "Sms", "Transport", "TransportError",
           "from_url"]


def from_url(url: str, *, redis_url: str | None = None,
             connect: Connect = connect_plain) -> Transport:
    """The transport of `url`: file://, kannel+http(s):// or smpp:// (docs/delivery.md)."""
    # With `redis_url`, an SMPP link's rate limit is shared by every process on the link;
    # `connect` makes its client (through Sentinel, for the gateway).
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileTransport(url.removeprefix("file://"))
    if scheme in ("kannel+http", "kannel+https"):
        return KannelTransport.from_url(url)
    if scheme == "smpp":
        # Imported here: the smpp package's modules import this package's base and throttle.
        from replies.transports.smpp.transport import SmppTransport

        return SmppTransport.from_url(url, redis_url=redis_url, connect=connect)
    raise ValueError(f"unknown transport {scheme!r}: use file://, kannel+http:// or smpp://")
