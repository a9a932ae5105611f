"""The client API: one-time codes, outbound messages and account events for the portal and partners.

Clients authenticate with `Authorization: Bearer <secret>` (GOVSMS_API_CLIENTS); each
may send only from its own sender ids, only to mobile numbers of the gateway's countries
(and those its entry adds), within a daily quota of messages and parts. Every SMS goes
through the same outbound worker, retries and SLA accounting as replies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import phonenumbers
import psycopg
import redis
from celery import Celery
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from replies.masking import mask_digits
from replies.reply import Reply
from replies.sealing import Sealer, derive
from replies.templates import Templates
from services import otp
from services.phones import to_e164
from services.stores import accounts, clients
from services.stores import otp as otp_store
from workers import messages
from workers.ingest.door import client_named
from workers.ingest.limits import RateLimiter
from workers.pipeline import to_parts
from workers.queues import BULK, OUTBOUND
from workers.settings import Settings
from workers.status import count_refusal
from workers.tasks import DELIVER, publish

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
PHONE_WINDOW_S, CLIENT_WINDOW_S, USER_WINDOW_S = 600, 60, 600
# Numbers an SMS may go to: where the type cannot be told apart, as in the US, it may be mobile.
MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


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
    counters: redis.Redis | None = None  # refusals counted, for the operator

    def __post_init__(self) -> None:
        key = self.settings.key()
        self.sealer = Sealer(key)
        self.otp_key = derive(key, "govsms/otp-code")
        self.audit_key = derive(key, "govsms/mbg-audit")
        self.body_key = derive(key, "govsms/idempotency-body")

    def refuse(self, client: str, status: int, error: str,
               headers: dict[str, str] | None = None) -> HTTPException:
        """The refusal to raise, counted per client and reason (`govsms status`, metrics)."""
        if self.counters is not None:
            count_refusal(self.counters, client, error)
        return HTTPException(status, {"error": error}, headers=headers)

    def deliver(self, outbound_ids: list[int], queue: str = OUTBOUND) -> None:
        """Hand queued parts to the outbound worker; the reconciler sends them if Redis is down."""
        publish(self.celery, DELIVER, [outbound_ids], queue=queue)


def _client(request: Request) -> str:
    """The name of the client whose secret the request carries; 401 otherwise."""
    found = client_named(request.app.state.api.settings, request.headers.get("Authorization", ""))
    if found is None:
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


def _recipient(api: ClientApi, client: str, raw: str) -> str:
    """`raw` in E.164 if it is a mobile number the client may send to; 422 otherwise."""
    try:
        number = phonenumbers.parse(raw, "KZ")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise api.refuse(client, 422, "phone_invalid")
    # Pumping lives on numbers that pay whoever runs them: other countries, premium and
    # international ranges. The gateway serves its countries' citizens, on their phones.
    countries = {*api.settings.regions.values(), *api.settings.api_clients[client].extra_countries}
    if phonenumbers.region_code_for_number(number) not in countries:
        raise api.refuse(client, 422, "country_not_allowed")
    if phonenumbers.number_type(number) not in MOBILE:
        raise api.refuse(client, 422, "not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _charge(api: ClientApi, conn: psycopg.Connection, client: str, parts: int,
            now: dt.datetime) -> None:
    """Count a message to the client's day; past its quota, 429 (the transaction undoes it)."""
    max_messages, max_parts = api.settings.quota(client)
    day = now.astimezone(dt.UTC).date()
    sent, parts_sent = clients.charge(conn, client, day, parts)
    if sent > max_messages or parts_sent > max_parts:
        midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        wait = max(math.ceil((midnight - now).total_seconds()), 1)
        log.warning("client %s refused: daily quota of %d messages, %d parts", client,
                    max_messages, max_parts)
        raise api.refuse(client, 429, "quota_exceeded", {"Retry-After": str(wait)})


def _body_digest(api: ClientApi, phone: str, body: OutboundSms) -> str:
    """What an Idempotency-Key is bound to: keyed, so the table tells nothing of the text."""
    canonical = json.dumps([phone, body.sender, body.text], ensure_ascii=False)
    return hmac.new(api.body_key, canonical.encode(), hashlib.sha256).hexdigest()


class OtpRequest(BaseModel):
    """A one-time code to send."""

    phone: str = Field(min_length=1, max_length=32)
    purpose: str
    iin: str | None = Field(None, max_length=12)
    # The portal's session or account the request is made for: each has a limit of its own.
    end_user: str | None = Field(None, min_length=1, max_length=128)


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
    phone = _recipient(api, client, body.phone)
    refused = otp.refusal(body.purpose, body.iin)
    if refused is not None:
        raise HTTPException(422, {"error": refused})
    settings = api.settings
    if body.purpose == "link_number" and not settings.api_clients[client].links_numbers:
        # Linking moves a citizen's number: only a client that authenticated the IIN's holder.
        log.warning("client %s may not link numbers", client)
        raise HTTPException(403, {"error": "not_allowed"})
    # Only now, the request being sound, is it counted, on every limit or on none.
    hits = [("otp-client", client, settings.otp_per_client, CLIENT_WINDOW_S),
            ("otp-phone", phone, settings.otp_per_phone, PHONE_WINDOW_S)]
    if body.end_user is not None:
        hits.append(("otp-user", f"{client}:{body.end_user}", settings.otp_per_user,
                     USER_WINDOW_S))
    wait = api.limiter.take(hits)
    if wait is not None:
        log.warning("code for %s refused: rate limited", mask_digits(phone))
        raise api.refuse(client, 429, "rate_limited", {"Retry-After": str(wait)})
    now = api.clock()
    with api.pool.connection() as conn, conn.transaction():
        issued = otp.issue(conn, key=api.otp_key, client=client, phone=phone,
                           purpose=body.purpose, iin=body.iin, now=now)
        if isinstance(issued, str):
            raise HTTPException(422, {"error": issued})
        outbound_ids: list[int] = []
        if not issued.suppressed:
            reply = Reply("otp", "code", {"code": issued.code}, sealed=True)
            outbound_ids, _ = messages.add_notice(
                conn, key=f"otp:{issued.id}", sender=settings.otp_sender, recipient=phone,
                parts=to_parts(api.templates.render(reply), api.sealer),
                deadline=now + dt.timedelta(seconds=settings.sla_seconds),
                service="otp", outcome="code", client=client)
    if issued.suppressed:
        # Answered as a sent code: a 403 would tell any client who is in the base.
        log.info("code %s for %s by %s suppressed: not in MBG", issued.id, mask_digits(phone),
                 client)
    else:
        api.deliver(outbound_ids)
        log.info("code %s for %s sent by %s", issued.id, mask_digits(phone), client)
    return JSONResponse({"id": issued.id, "expires_at": issued.expires_at.isoformat()}, 202)


@router.post("/otp/verify")
def verify_code(body: OtpCheck, client: ClientName,
                api: Api) -> dict:
    """`{"ok": true, "purpose": ...}`, or `{"ok": false, "reason": ...}`."""
    phone = _phone(body.phone)
    settings, now = api.settings, api.clock()
    notices: list[int] = []
    with api.pool.connection() as conn, conn.transaction():
        verdict = otp.verify(conn, key=api.otp_key, audit_key=api.audit_key, client=client,
                             phone=phone, code=body.code, now=now,
                             max_failures=settings.otp_failures_per_phone)
        for previous in verdict.replaced:
            # The IIN's previous number hears of it: if the link was not its holder's doing,
            # that is how they learn.
            ids, _ = messages.add_notice(
                conn, key=f"mbg-replaced:{uuid.uuid4().hex}", sender=settings.otp_sender,
                recipient=previous,
                parts=to_parts(api.templates.render(Reply("otp", "number_replaced"))),
                deadline=now + dt.timedelta(seconds=settings.sla_seconds),
                service="otp", outcome="number_replaced", client=client)
            notices += ids
    if notices:
        api.deliver(notices)
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
        raise api.refuse(client, 403, "sender_not_allowed")
    phone = _recipient(api, client, body.to)
    parts = to_parts(body.text)
    if len(parts.texts) > api.settings.api_max_parts:
        raise api.refuse(client, 422, "too_many_parts")
    now = api.clock()
    with api.pool.connection() as conn, conn.transaction():
        if idempotency_key is not None:
            digest = _body_digest(api, phone, body)
            bound = clients.claim_key(conn, client, idempotency_key, digest, now)
            if bound is not None and not hmac.compare_digest(bound, digest):
                log.warning("client %s reused an idempotency key with another body", client)
                raise HTTPException(409, {"error": "idempotency_key_reused"})
        outbound_ids, new = messages.add_notice(
            conn, key=f"api:{client}:{idempotency_key or uuid.uuid4().hex}", sender=body.sender,
            recipient=phone, parts=parts,
            deadline=now + dt.timedelta(seconds=api.settings.sla_seconds), client=client)
        if new:  # a duplicate was paid for the first time; a refusal rolls the message back
            _charge(api, conn, client, len(outbound_ids), now)
    if new:
        api.deliver(outbound_ids, queue=BULK)
    return JSONResponse({"id": outbound_ids[0], "parts": len(outbound_ids), "duplicate": not new},
                        202)


@router.get("/messages/outbound/{message_id}")
def message_status(message_id: int, client: ClientName, api: Api) -> dict:
    """What became of a message this client sent: each part's state and delivery receipt,
    with their times; never its text. 404 for any other client's."""
    with api.pool.connection() as conn:
        parts = messages.client_parts(conn, client, first=message_id)
    if not parts:
        raise HTTPException(404, {"error": "unknown_message"})
    return {"id": message_id, "to": mask_digits(parts[0]["recipient"]),
            "sender": parts[0]["sender"], **delivery(parts)}


@router.get("/otp/{code_id}")
def code_status(code_id: int, client: ClientName, api: Api) -> dict:
    """A code this client asked for: its state and times, and for a `link_number` code its
    SMS as `message_status` shows one; never the code. 404 for any other client's.

    A `document_access` code shows no SMS: one for a number outside MBG is never sent (the
    request is answered as if it were), and its SMS's absence would tell who is in MBG."""
    with api.pool.connection() as conn:
        code = otp_store.of_client(conn, code_id, client)
        parts = (messages.client_parts(conn, client, key=f"otp:{code_id}")
                 if code is not None and code["purpose"] == "link_number" else [])
    if code is None:
        raise HTTPException(404, {"error": "unknown_code"})
    return {**code, **({"sms": delivery(parts)} if parts else {})}


def delivery(parts: list[dict]) -> dict:
    """An SMS's state from its parts: queued until every part is out, failed if one failed,
    else sent; delivered once every part's receipt says so. Each part as it stands."""
    states = {p["state"] for p in parts}
    state = ("failed" if "failed" in states else "sent" if states == {"sent"} else "queued")
    receipts = {p["delivery"] for p in parts}
    sent = [p["sent_at"] for p in parts if p["sent_at"] is not None]
    delivered = [p["delivery_at"] for p in parts if p["delivery"] == "delivered"]
    return {
        "state": state,
        "delivery": receipts.pop() if len(receipts) == 1 else "partial",
        "created_at": parts[0]["created_at"],
        "sent_at": max(sent) if state == "sent" else None,
        "delivered_at": max(delivered) if len(delivered) == len(parts) else None,
        "purged": parts[0]["purged"],
        "parts": [{key: p[key] for key in ("part", "state", "attempts", "sent_at", "delivery",
                                           "delivery_at")} for p in parts],
    }


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
