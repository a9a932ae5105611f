"""The console's door: the session, then the bounds, then the CSRF token, before any page.

An ASGI middleware in front of every route. From the headers alone: the method, the
body's declared size and type, a POST's Origin; then the session cookie, looked up in
PostgreSQL (an unknown, ended or expired one is no session). Only then is a POST's form
read (at most FORM_LIMIT bytes) and its CSRF token checked against the session's, or,
on the sign-in form, the pre-session cookie's. The page gets the operator and the parsed
form in `request.state`; nothing else reads a body. Every answer carries headers that
keep it out of caches and frames and forbid scripts.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.console.sessions import csrf_token

log = logging.getLogger(__name__)

SESSION_COOKIE = "govsms_console"
PRESESSION_COOKIE = "govsms_console_signin"
CSRF_FIELD = "csrf"
SIGN_IN = "/signin"
PUBLIC_PATHS = frozenset({SIGN_IN, "/healthz", "/console.css"})
FORM_LIMIT = 4096  # a sign-in, a search or a replay button: a few hundred bytes
MAX_FIELDS = 16
FORM_TYPE = "application/x-www-form-urlencoded"
SECURITY_HEADERS = (
    (b"content-security-policy", (b"default-src 'none'; style-src 'self'; img-src 'self'; "
                                  b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)

# Whose session a token is (None: nobody's), asked of PostgreSQL off the event loop.
SessionLookup = Callable[[str], "str | None"]


def cookies(headers: Headers) -> dict[str, str]:
    """The request's cookies by name; none from a malformed header."""
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


class ConsoleDoor:
    """ASGI middleware: who is asking, how much they send, and whether the form is theirs."""

    def __init__(self, app: ASGIApp, *, lookup: SessionLookup, csrf_key: bytes) -> None:
        self.app = app
        self.lookup = lookup
        self.csrf_key = csrf_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = message.get("headers", [])
                names = {name.lower() for name, _ in given}
                message = {**message, "headers": [*given, *(h for h in SECURITY_HEADERS
                                                            if h[0] not in names)]}
            await send(message)

        path, method = scope["path"], scope["method"]
        headers = Headers(scope=scope)
        refusal = _bounds(method, headers)
        jar = cookies(headers)
        operator = None
        if refusal is None and path not in PUBLIC_PATHS:
            operator = await run_in_threadpool(self.lookup, jar.get(SESSION_COOKIE, ""))
            if operator is None:
                if method == "GET":
                    await _answer(guarded, 303, "sign in first", location=SIGN_IN)
                    return
                refusal = (403, "not signed in")
        if refusal is None and method == "POST":
            form = await _read_form(receive)
            bound_to = jar.get(SESSION_COOKIE if operator else PRESESSION_COOKIE, "")
            if form is None:
                refusal = (413, f"form over {FORM_LIMIT} bytes")
            elif not _csrf_matches(self.csrf_key, bound_to, form):
                refusal = (403, "missing or wrong CSRF token: reload the page")
            else:
                scope.setdefault("state", {})["form"] = form
        if refusal is not None:
            log.warning("console refused %s %s: %s", method, path, refusal[1])
            await _answer(guarded, *refusal, close=method == "POST")
            return
        state = scope.setdefault("state", {})
        state["operator"] = operator
        state["session"] = jar.get(SESSION_COOKIE, "") if operator else ""
        await self.app(scope, _no_body if method == "POST" else receive, guarded)


def _bounds(method: str, headers: Headers) -> tuple[int, str] | None:
    if method not in ("GET", "HEAD", "POST"):
        return 405, "method not allowed"
    if method != "POST":
        return None
    length = headers.get("content-length")
    if length is None or not (length.isascii() and length.isdigit()):
        return 411, "a form needs its Content-Length"
    if int(length) > FORM_LIMIT:
        return 413, f"form over {FORM_LIMIT} bytes"
    if headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return 415, "forms only"
    origin = headers.get("origin")
    # A browser says where a form came from: another site's page may not post here.
    if origin not in (None, "null") and urlsplit(origin).netloc != headers.get("host"):
        return 403, "a form from another site"
    return None


def _csrf_matches(key: bytes, bound_to: str, form: dict[str, str]) -> bool:
    given = form.get(CSRF_FIELD, "")
    return bool(bound_to and given) and hmac.compare_digest(
        given.encode(), csrf_token(key, bound_to).encode())


async def _read_form(receive: Receive) -> dict[str, str] | None:
    """The form's fields (the first of each name), or None past FORM_LIMIT bytes."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if len(body) > FORM_LIMIT:
            return None
        if not message.get("more_body", False):
            break
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _answer(send: Send, status: int, reason: str, *, location: str | None = None,
                  close: bool = False) -> None:
    body = f"{status} {reason}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    if location is not None:
        headers.append((b"location", location.encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
