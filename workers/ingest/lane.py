"""The bridge's busiest routes, served straight from ASGI: each MO and each delivery report
is a request, and at a bridge's full rate the framework's router, dependencies and thread
hops cost more than recording the message does.

    POST /v1/messages/inbound   JSON {"from", "to", "text", "id", "smsc"} -> 202 {"id", "duplicate"}
    GET|POST /sms/inbound       Kannel's get-url (query) or post (a form) -> 202 accepted|duplicate
    GET|POST /sms/dlr           Kannel's dlr-url: ?outbound=ID&type=%d -> 200 ok

The door in front (door.py) has authenticated the bridge and bounds the body as it is read;
the lane checks the bridge again, so neither route is ever open without it. MOs and
receipts that arrive together are recorded together (accept.py's `Batcher`): one
transaction and one task for a batch of MOs, one statement for a batch of receipts. Every other
route, and these paths with another method, go on to the app behind (http.py). Answers
are those of the app: 400 (Kannel's route) or 422 naming the field and the rule, never the
value; 503 with Retry-After when the message could not be kept.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from psycopg_pool import ConnectionPool
from pydantic import ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from workers import messages
from workers.ingest.accept import Accepted, InboundSms, Unavailable, not_served
from workers.ingest.door import Refusal, bridge_token, check_bridge, describe
from workers.settings import Settings

log = logging.getLogger(__name__)

JSON_PATH = "/v1/messages/inbound"
KANNEL_PATH = "/sms/inbound"
DLR_PATH = "/sms/dlr"
ROUTES = frozenset({("POST", JSON_PATH), ("GET", KANNEL_PATH), ("POST", KANNEL_PATH),
                    ("GET", DLR_PATH), ("POST", DLR_PATH)})
FORM = "application/x-www-form-urlencoded"
# Kannel's delivery report types (its `%d`) as delivery states.
KANNEL_DLR = {1: "delivered", 2: "undeliverable", 4: "enroute", 8: "accepted", 16: "rejected"}


class BridgeLane:
    """ASGI middleware behind the door: serves ROUTES itself, passes the rest to `app`."""

    def __init__(self, app: ASGIApp, *, settings: Settings, secret: str) -> None:
        self.app = app
        self.settings = settings
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in ROUTES:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
        refusal = self._refused(scope, headers, query)
        if refusal is not None:
            status, answer = refusal.status, {"detail": refusal.reason}
        elif scope["path"] == DLR_PATH:
            status, answer = await self._receipt(scope, query)
        else:
            status, answer = await self._take(scope, receive, headers, query)
        if not status:  # the caller went away before its body came: nothing was kept
            return
        if isinstance(answer, str):
            await _send(send, status, answer.encode(), b"text/plain; charset=utf-8")
            return
        headers = [(b"retry-after", b"5")] if status == 503 else []
        await _send(send, status, json.dumps(answer).encode(), b"application/json", headers)

    def _refused(self, scope: Scope, headers: Headers, query: QueryParams) -> Refusal | None:
        client = scope["client"][0] if scope.get("client") else ""
        refusal = check_bridge(self.settings, self.secret, client,
                               bridge_token(scope["path"], headers, query))
        if refusal is not None:
            log.warning("refused %s %s from %s: %s", scope["method"], scope["path"], client,
                        refusal.reason)
        return refusal

    async def _receipt(self, scope: Scope, query: QueryParams) -> tuple[int, Any]:
        """A delivery report: final states are not overwritten; an id none of ours is 404."""
        numbers = {key: _integer(query.get(key)) for key in ("outbound", "type")}
        wrong = [f"{key}: a whole number" for key, value in numbers.items() if value is None]
        if wrong:
            return 422, {"detail": wrong}
        state = KANNEL_DLR.get(numbers["type"])  # type: ignore[arg-type]
        if state is None:
            return 400, {"detail": f"unknown delivery report type {numbers['type']}"}
        outbound: int = numbers["outbound"]  # type: ignore[assignment]
        if outbound < 0:
            log.warning("delivery report for a negative outbound id refused")
            return 400, {"detail": "outbound: a positive id"}
        known, = await scope["app"].state.receipts.accept([(outbound, state)])
        if not known:
            log.warning("delivery report for unknown outbound %d", outbound)
            return 404, {"detail": "outbound: no such message"}
        return 200, "ok"

    async def _take(self, scope: Scope, receive: Receive, headers: Headers,
                    query: QueryParams) -> tuple[int, Any]:
        """An MO: recorded and enqueued (accept.py), or why not."""
        kannel = scope["path"] == KANNEL_PATH
        body = await _body(receive)
        if body is None:
            return 0, None
        invalid = 400 if kannel else 422
        try:
            if not kannel:
                sms = InboundSms.model_validate_json(body)
            else:
                fields = dict(query)
                if scope["method"] == "POST":
                    if headers.get("content-type", FORM).split(";")[0].strip() != FORM:
                        return 415, {"detail": f"the form as {FORM}"}
                    fields.update(parse_qsl(body.decode("utf-8", "replace"),
                                            keep_blank_values=True))
                fields.pop("token", None)
                sms = InboundSms.model_validate(fields)
        except ValidationError as error:
            return invalid, {"detail": describe(error.errors())}
        problem = not_served(self.settings, sms)
        if problem is not None:
            return invalid, {"detail": [problem]}
        try:
            accepted: Accepted
            accepted, = await scope["app"].state.batcher.accept([sms])
        except Unavailable as error:
            return 503, {"detail": str(error)}
        if kannel:
            return 202, "duplicate" if accepted.duplicate else "accepted"
        return 202, {"id": accepted.id, "duplicate": accepted.duplicate}


def _integer(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def record_receipts(pool: ConnectionPool, receipts: list[tuple[int, str]]) -> list[bool]:
    """Record the reports (outbound id, state) that came together, in one statement; for
    each, False when the id is none of ours."""
    with pool.connection() as conn:
        return messages.record_deliveries(conn, receipts)


async def _body(receive: Receive) -> bytes | None:
    """The whole body (the door's `receive` bounds it), or None if the caller went away."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, content_type: bytes,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
