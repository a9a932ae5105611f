"""The ingest's door: who may knock, how much they may hand over, how long they may take.

Every request is authenticated, then bounded, before anything reads its body: an ASGI
middleware in front of the app checks the token and `Content-Length` from the headers
alone, and counts a chunked body as it streams. Error bodies are short and never an
echo of what was sent. Below the app, the HTTP protocol drops a connection that does
not finish its headers in time (slowloris).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from workers.messages import MAX_TEXT
from workers.settings import Settings

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Bridge-Token"
# Kannel's get-url and dlr-url cannot set a header: only there may the token ride in the query.
QUERY_TOKEN_PATHS = frozenset({"/sms/inbound", "/sms/dlr"})
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
BATCH_PATH = "/v1/messages/inbound/batch"
BODY_LIMIT = 64 * 1024
# A full batch (500 messages) of 10,000-character texts is 5.0 MB of text when the texts are
# ASCII, plus about 150 bytes of envelope each: 8 MiB holds it with room. Real MO texts are
# SMS-sized (a few hundred characters, at most ~17,000 for 255 UCS-2 parts), so a real batch,
# even of Cyrillic escaped as \uXXXX (6 bytes a character), stays far below; a bridge that
# meets the 413 sends fewer messages per batch.
BATCH_BODY_LIMIT = 8 * 1024 * 1024
MAX_ERRORS = 10  # problems named in one answer; a 500-message batch could have thousands
MAX_LOC_PART = 40

# Headers must be complete this long after the connection opens or the last answer went out.
HEADER_TIMEOUT_S = 5.0
# A Kannel get-url with a 10,000-character Cyrillic text percent-encoded is about 60 KB (the
# HTTP parser refuses a URL past 64 KB itself); the other headers are small.
MAX_HEADER_BYTES = 128 * 1024


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the door stays shut: the status and a short reason, never the caller's input."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


class BodyTooLarge(HTTPException):
    """A streamed (chunked) body grew past its bound while it was read."""

    def __init__(self, path: str) -> None:
        super().__init__(413, body_limit_reason(path), headers={"Connection": "close"})


def body_limit_reason(path: str) -> str:
    """The 413 reason on `path`: the bound, and what it means for the caller."""
    if path == BATCH_PATH:
        return f"body over {BATCH_BODY_LIMIT} bytes: send fewer messages per batch"
    if is_bridge_path(path):
        return f"body over {BODY_LIMIT} bytes: a text is at most {MAX_TEXT} characters"
    return f"body over {BODY_LIMIT} bytes"


def body_limit(path: str) -> int:
    """The most bytes a body may have on `path`."""
    return BATCH_BODY_LIMIT if path == BATCH_PATH else BODY_LIMIT


def is_bridge_path(path: str) -> bool:
    """The SMSC bridge's routes (Kannel's, the JSON inbound ones and the replies lookup)."""
    return (path.startswith("/sms/") or path == "/v1/messages/inbound"
            or path.startswith("/v1/messages/inbound/"))


def bridge_token(path: str, headers: Headers, query: QueryParams) -> str:
    """The bridge token a request carries: the header, or the query on Kannel's two routes."""
    token = headers.get(TOKEN_HEADER)
    if token is None and path in QUERY_TOKEN_PATHS:
        token = query.get("token")
    return token or ""


def check_bridge(settings: Settings, secret: str, client: str, token: str) -> Refusal | None:
    """Only configured bridges get in: an allowed address, then the shared secret."""
    if settings.bridge_allow_ips:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in settings.bridge_allow_ips):
            return Refusal(403, "address not allowed")
    # An empty token never matches, even against an empty secret.
    if not token or not secret or not hmac.compare_digest(token.encode(), secret.encode()):
        return Refusal(401, "bad or missing bridge token")
    return None


def client_named(settings: Settings, authorization: str) -> str | None:
    """The API client whose secret `Authorization: Bearer` carries, or None."""
    scheme, _, token = authorization.partition(" ")
    found = None
    for name, client in settings.api_clients.items():
        secret = client.secret.get_secret_value()
        # Compare with every client, so the time taken does not tell which one nearly matched;
        # an empty token never matches, even a client configured without a secret.
        if hmac.compare_digest(token.encode(), secret.encode()) and token and secret:
            found = name
    return found if scheme.lower() == "bearer" else None


def check_client(settings: Settings, authorization: str) -> Refusal | None:
    """A client of the client API: `Authorization: Bearer` with one client's secret."""
    if client_named(settings, authorization) is None:
        return Refusal(401, "bad or missing client token", (("WWW-Authenticate", "Bearer"),))
    return None


class Door:
    """ASGI middleware: authenticate from the headers, bound the body, then let the app read."""

    def __init__(self, app: ASGIApp, *, settings: Settings, secret: str) -> None:
        self.app = app
        self.settings = settings
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        client = scope["client"][0] if scope.get("client") else ""
        refusal = self._authenticate(path, headers, scope, client)
        limit = body_limit(path)
        length = headers.get("content-length")
        if refusal is None and length is not None:
            if not (length.isascii() and length.isdigit()):
                refusal = Refusal(400, "invalid Content-Length")
            elif int(length) > limit:
                refusal = Refusal(413, body_limit_reason(path))
        if refusal is not None:
            if refusal.status in (401, 403):
                log.warning("refused %s %s from %s: %s", scope["method"], path, client,
                            refusal.reason)
            # A body may follow that nobody will read: close rather than wade through it.
            pending = "transfer-encoding" in headers or (length or "0") != "0"
            await _answer(send, refusal, close=pending)
            return
        await self._pass(scope, receive, send, path, limit)

    def _authenticate(self, path: str, headers: Headers, scope: Scope,
                      client: str) -> Refusal | None:
        if path in PUBLIC_PATHS:
            return None
        if is_bridge_path(path):
            query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
            return check_bridge(self.settings, self.secret, client,
                                bridge_token(path, headers, query))
        # Everything else is the client API's, or nothing: closed without a client's token.
        return check_client(self.settings, headers.get("authorization", ""))

    async def _pass(self, scope: Scope, receive: Receive, send: Send, path: str,
                    limit: int) -> None:
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(path)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as error:
            # Normally the app's exception handler answers it; this is for a reader outside it.
            if started:
                raise
            await _answer(send, Refusal(413, str(error.detail)), close=True)


async def _answer(send: Send, refusal: Refusal, *, close: bool) -> None:
    body = json.dumps({"detail": refusal.reason}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _rule(error: dict[str, Any]) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"at least {ctx.get('min_length')} characters"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} items"
    if kind == "json_invalid":
        return "not valid JSON"
    # Pydantic's messages state the rule, not the value; the "input" field is never used.
    message = str(error.get("msg", kind)).removeprefix("Value error, ")
    return message[:120]


def describe(errors: Sequence[dict[str, Any]]) -> list[str]:
    """Each validation problem as "field: rule", at most MAX_ERRORS, without the values sent."""
    described = []
    for error in errors[:MAX_ERRORS]:
        loc = [str(part)[:MAX_LOC_PART] for part in error.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        described.append(f"{'.'.join(loc) or 'body'}: {_rule(error)}")
    if len(errors) > MAX_ERRORS:
        described.append(f"and {len(errors) - MAX_ERRORS} more")
    return described


async def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """422 naming the fields and rules broken; never the input (which may be megabytes)."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": describe(error.errors())}, status_code=422)


class HeaderDeadline(asyncio.Protocol):
    """Drops a connection whose request headers take longer than `header_timeout_s`, or grow
    past `max_header_bytes`, counted from the connection's start or its last answer."""

    header_timeout_s = HEADER_TIMEOUT_S
    max_header_bytes = MAX_HEADER_BYTES
    _deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0  # of the request whose headers are awaited
    _tail = b""  # the last bytes seen, should the blank line be split between reads
    # Provided by uvicorn's protocol classes.
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._waiting():
            super().data_received(data)  # type: ignore[misc]
            return
        # Measured before the parser sees them: past the bound, nothing of them is parsed.
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        header_bytes = self._header_bytes + (len(data) if end < 0 else end + 4 - len(self._tail))
        self._header_bytes, self._tail = header_bytes, seen[-3:]
        if header_bytes > self.max_header_bytes:
            self._drop(431, "Request Header Fields Too Large")
            return
        super().data_received(data)  # type: ignore[misc]
        if not self._waiting():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self._waiting() and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes, self._tail = 0, b""
        self._deadline = asyncio.get_running_loop().call_later(
            self.header_timeout_s, self._drop, 408, "Request Timeout")

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _drop(self, status: int, reason: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        # Only a caller that started a request is told why; an idle connection just closes
        # (as uvicorn's keep-alive timeout would close it), and is not worth a warning.
        if self._header_bytes:
            body = reason.encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                                 % (status, reason.encode(), len(body), body))
            client = getattr(self, "client", None)
            log.warning("dropped a connection from %s: %s", client[0] if client else "?", reason)
        self.transport.close()


def protocol_class(header_timeout_s: float,
                   max_header_bytes: int = MAX_HEADER_BYTES) -> type[asyncio.Protocol]:
    """Uvicorn's HTTP protocol (httptools, else h11) behind a header deadline."""
    return type("DoorHttpProtocol", (HeaderDeadline, AutoHTTPProtocol),
                {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes})


def server_config(settings: Settings, app: ASGIApp) -> uvicorn.Config:
    """How uvicorn serves `app`: forwarded headers only from configured proxies, header deadline."""
    proxies = [str(net) for net in settings.trusted_proxies]
    # No access log: Kannel's query strings carry phone numbers and the bridge token.
    return uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                          access_log=False, log_config=None,
                          proxy_headers=bool(proxies), forwarded_allow_ips=proxies,
                          http=protocol_class(settings.http_header_timeout_s),
                          ws="none")  # no WebSocket route: no upgrade to offer
