"""Outbound transports, each behind the one small protocol of `base`, chosen by URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from replies.transports.base import Sms, Transport, TransportError
from replies.transports.file import FileTransport
from replies.transports.kannel import KannelTransport

__all__ = ["FileTransport", "KannelTransport", "Sms", "Transport", "TransportError", "from_url"]


def from_url(url: str) -> Transport:
    """`file://PATH` or `kannel+http(s)://USER:PASS@HOST:PORT/cgi-bin/sendsms`."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileTransport(url.removeprefix("file://"))
    if scheme in ("kannel+http", "kannel+https"):
        return KannelTransport.from_url(url)
    raise ValueError(f"unknown transport {scheme!r}: use file:// or kannel+http://")
