"""The client API: one-time codes, outbound messages and account events for the portal and partners.

Clients authenticate with `Authorization: Bearer <secret>` (GOVSMS_API_CLIENTS); each
may send only from its own sender ids. Every SMS goes through the same outbound
worker, retries and SLA accounting as replies.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from replies.masking import mask_digits
from replies.sealing import Sealer, derive
from replies.templates import Templates
from services import otp
from services.handler import Reply
from services.phones import to_e164
from services.stores import accounts
from workers import messages
from workers.celery_app import BULK, OUTBOUND
from workers.limits import RateLimiter
from workers.pipeline import to_parts
from workers.settings import Settings
from workers.tasks import DELIVER, publish

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
PHONE_WINDOW_S, CLIENT_WINDOW_S = 600, 60


def utc_now() -> dt.datetime:
    """The current time, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass
class ClientApi:
    """What the client endpoints need, built once per ingest process."""

    settings: Settings
    pool: ConnectionPool
    celery: Celery
    limiter: RateLimiter
    templates: Templates
    clock: Clock

    def __post_init__(self) -> None:
        key = self.settings.key()
        self.sealer = Sealer(key)
        self.otp_key = derive(key, "govsms/otp-code")

    def deliver(self, outbound_ids: list[int], queue: str = OUTBOUND) -> None:
        """Hand queued parts to the outbound worker; the reconciler sends them if Redis is down."""
        publish(self.celery, DELIVER, [outbound_ids], queue=queue)


def _client(request: Request) -> str:
    """The name of the client whose secret the request carries; 401 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    found = None
    for name, client in request.app.state.api.settings.api_clients.items():
        # Compare with every client, so the time taken does not tell which one nearly matched.
        if hmac.compare_digest(token.encode(), client.secret.get_secret_value().encode()):
            found = name
    if scheme.lower() != "bearer" or found is None:
        log.warning("refused %s %s: bad or missing client token", request.method, request.url.path)
        raise HTTPException(401, "bad or missing client token",
                            headers={"WWW-Authenticate": "Bearer"})
    return found


def _api(request: Request) -> ClientApi:
    return request.app.state.api


def _phone(raw: str) -> str:
    phone = to_e164(raw, "KZ")
    if phone is None:
        raise HTTPException(422, {"error": "phone_invalid"})
    return phone


class OtpRequest(BaseModel):
    """A one-time code to send."""

    phone: str = Field(min_length=1, max_length=32)
    purpose: str
    iin: str | None = Field(None, max_length=12)


class OtpCheck(BaseModel):
    """A code the citizen typed."""

    phone: str = Field(min_length=1, max_length=32)
    code: str = Field(max_length=16)


class OutboundSms(BaseModel):
    """A message an API client sends."""

    to: str = Field(min_length=1, max_length=32)
    text: str = Field(min_length=1, max_length=1600)
    sender: str = Field(min_length=1, max_length=16)


ClientName = Annotated[str, Depends(_client)]
Api = Annotated[ClientApi, Depends(_api)]
router = APIRouter(prefix="/v1")


@router.post("/otp", status_code=202)
def send_code(body: OtpRequest, client: ClientName,
              api: Api) -> JSONResponse:
    """Send a 6-digit code from 1414; it lives 10 minutes and supersedes the previous one."""
    phone = _phone(body.phone)
    settings = api.settings
    for name, subject, limit, window in (
        ("otp-client", client, settings.otp_per_client, CLIENT_WINDOW_S),
        ("otp-phone", phone, settings.otp_per_phone, PHONE_WINDOW_S),
    ):
        wait = api.limiter.hit(name, subject, limit, window)
        if wait is not None:
            log.warning("code for %s refused: %s limit", mask_digits(phone), name)
            raise HTTPException(429, {"error": "rate_limited"}, headers={"Retry-After": str(wait)})
    now = api.clock()
    with api.pool.connection() as conn, conn.transaction():
        issued = otp.issue(conn, key=api.otp_key, client=client, phone=phone,
                           purpose=body.purpose, iin=body.iin, now=now)
        if isinstance(issued, str):
            raise HTTPException(403 if issued == "not_in_mbg" else 422, {"error": issued})
        reply = Reply("otp", "code", {"code": issued.code}, sealed=True)
        outbound_ids, _ = messages.add_notice(
            conn, key=f"otp:{issued.id}", sender=settings.otp_sender, recipient=phone,
            parts=to_parts(api.templates.render(reply), api.sealer),
            deadline=now + dt.timedelta(seconds=settings.sla_seconds),
            service="otp", outcome="code", client=client)
    api.deliver(outbound_ids)
    log.info("code %s for %s sent by %s", issued.id, mask_digits(phone), client)
    return JSONResponse({"id": issued.id, "expires_at": issued.expires_at.isoformat()}, 202)


@router.post("/otp/verify")
def verify_code(body: OtpCheck, client: ClientName,
                api: Api) -> dict:
    """`{"ok": true, "purpose": ...}`, or `{"ok": false, "reason": ...}`."""
    phone = _phone(body.phone)
    with api.pool.connection() as conn, conn.transaction():
        verdict = otp.verify(conn, key=api.otp_key, client=client, phone=phone, code=body.code,
                             now=api.clock())
    log.info("code check for %s: %s", mask_digits(phone), verdict.reason or "ok")
    if verdict.ok:
        return {"ok": True, "purpose": verdict.purpose}
    return {"ok": False, "reason": verdict.reason}


@router.post("/messages/outbound", status_code=202)
def send_message(body: OutboundSms, client: ClientName,
                 api: Api,
                 idempotency_key: Annotated[str | None, Header(max_length=128)] = None
                 ) -> JSONResponse:
    """Send `text` to `to` from one of the client's sender ids; a repeated key sends once."""
    if body.sender not in api.settings.api_clients[client].senders:
        log.warning("client %s may not send as %s", client, body.sender)
        raise HTTPException(403, {"error": "sender_not_allowed"})
    phone = _phone(body.to)
    now = api.clock()
    with api.pool.connection() as conn, conn.transaction():
        outbound_ids, new = messages.add_notice(
            conn, key=f"api:{client}:{idempotency_key or uuid.uuid4().hex}", sender=body.sender,
            recipient=phone, parts=to_parts(body.text),
            deadline=now + dt.timedelta(seconds=api.settings.sla_seconds), client=client)
    if new:
        api.deliver(outbound_ids, queue=BULK)
    return JSONResponse({"id": outbound_ids[0], "parts": len(outbound_ids), "duplicate": not new},
                        202)


@router.post("/accounts/{username}/password-changed")
def password_changed(username: str, client: ClientName,
                     api: Api) -> dict:
    """The citizen set a password of their own: the issued one is dropped, rotation stops."""
    if not api.settings.api_clients[client].manages_accounts:
        raise HTTPException(403, {"error": "not_allowed"})
    with api.pool.connection() as conn, conn.transaction():
        if not accounts.password_changed(conn, username, api.clock()):
            raise HTTPException(404, {"error": "unknown_account"})
    return {"ok": True}
