"""The ingest HTTP server: the routes of the operator's SMSC bridge, and the app that
serves them with the client API behind the door (the three that take one MO or one
delivery report a request are served by the lane in front of the app, lane.py).

Every message is recorded in PostgreSQL and its id enqueued on Redis (accept.py) before
the bridge gets a 2xx; if either fails, the bridge gets 503 and retries.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

import psycopg
import redis
from annotated_types import Len
from celery import Celery
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from replies.templates import Templates
from workers import db, messages, redis_urls
from workers.app import create_app as create_celery
from workers.ingest import door
from workers.ingest.accept import (
    DEFAULT_SOURCE,
    MAX_BATCH,
    Accepted,
    Batcher,
    InboundSms,
    Ingest,
    Unavailable,
    not_served,
)
from workers.ingest.client_api import ClientApi, Clock, utc_now
from workers.ingest.client_api import router as client_api
from workers.ingest.lane import BridgeLane, record_receipts
from workers.ingest.limits import RateLimiter
from workers.queues import INBOUND, OUTBOUND, all_queues
from workers.settings import Settings
from workers.status import GatewayCollector

log = logging.getLogger(__name__)

# Each read from Redis while publishing: with the tasks' retry policy, a stalled broker
# gets the bridge its 503 within about 6 s, long before it gives up on the request.
BROKER_TIMEOUT_S = 2.0
TOKEN_HEADER = door.TOKEN_HEADER


async def _check_bridge(request: Request) -> None:
    """Only configured bridges get in: allowed address, then the shared secret (never empty).

    The door checked it already, before the body; this keeps each bridge route shut on its
    own should a route ever be served without the door in front.
    """
    client = request.client.host if request.client else ""
    token = door.bridge_token(request.url.path, request.headers, request.query_params)
    refusal = door.check_bridge(request.app.state.settings, request.app.state.secret, client,
                                token)
    if refusal is not None:
        log.warning("refused %s %s from %s: %s", request.method, request.url.path, client,
                    refusal.reason)
        raise HTTPException(refusal.status, refusal.reason)


def _check_shortcodes(settings: Settings, batch: list[InboundSms]) -> None:
    """Refuse messages to a short code this gateway does not serve: nobody would answer them
    from a code that is not ours."""
    problems = [f"{n}.{problem}" for n, sms in enumerate(batch)
                if (problem := not_served(settings, sms)) is not None]
    if len(problems) > door.MAX_ERRORS:
        problems[door.MAX_ERRORS:] = [f"and {len(problems) - door.MAX_ERRORS} more"]
    if problems:
        raise HTTPException(422, problems)


async def _accept(request: Request, batch: list[InboundSms]) -> list[Accepted]:
    try:
        return await request.app.state.batcher.accept(batch)
    except Unavailable as error:
        raise HTTPException(503, str(error), headers={"Retry-After": "5"}) from None


def backlog(broker: redis.Redis) -> int:
    """Tasks waiting for a worker on the queues a batch's messages go through (but the
    services', where a slow registry must not slow the others' intake)."""
    pipe = broker.pipeline(transaction=False)
    pipe.llen(INBOUND)
    pipe.llen(OUTBOUND)
    return sum(pipe.execute())


def create_app(settings: Settings, *, celery: Celery | None = None,
               clock: Clock = utc_now) -> FastAPI:
    """The ingest ASGI app for `settings`: the bridge's door and the client API."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = db.create_pool(settings.database_url or "", max_size=10, name="ingest",
                              statement_timeout_ms=settings.statement_timeout_ms,
                              transaction_pooler=settings.database_transaction_pooler)
        broker = celery or create_celery(settings, broker_timeout_s=BROKER_TIMEOUT_S)
        limits = redis_urls.client(settings.redis_url or "", socket_timeout=2,
                                   socket_connect_timeout=2)
        # The queues' depth, read between lingers: a stalled broker must not hold a batch long.
        depth = redis_urls.client(settings.redis_url or "", socket_timeout=0.25,
                                  socket_connect_timeout=0.25)
        app.state.ingest = Ingest(settings, pool, broker)
        app.state.batcher = Batcher(app.state.ingest.accept_many,
                                    linger_s=settings.ingest_linger_ms / 1000,
                                    linger_max_s=settings.ingest_linger_max_ms / 1000,
                                    depth=lambda: backlog(depth))
        app.state.receipts = Batcher(partial(record_receipts, pool),
                                     linger_s=settings.ingest_linger_ms / 1000)
        app.state.api = ClientApi(settings, pool, broker, RateLimiter(limits),
                                  Templates.load(settings.templates), clock, limits)
        app.state.redis = limits
        app.state.metrics = CollectorRegistry(auto_describe=False)
        app.state.metrics.register(GatewayCollector(pool, limits, all_queues(settings),
                                                    settings))
        try:
            yield
        finally:
            pool.close()
            limits.close()
            depth.close()

    # No /docs, /redoc or /openapi.json: the door's callers are configured, not discovered.
    app = FastAPI(title="govsms ingest", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(client_api)
    app.state.settings = settings
    app.state.secret = settings.secret()
    # Middleware added last runs first: the door, then the lane that serves the bridge's
    # busiest routes itself (lane.py), then the app's own routes.
    app.add_middleware(BridgeLane, settings=settings, secret=app.state.secret)
    app.add_middleware(door.Door, settings=settings, secret=app.state.secret)
    app.add_exception_handler(RequestValidationError, door.invalid_request)
    bridge = [Depends(_check_bridge)]

    @app.post("/v1/messages/inbound/batch", dependencies=bridge, status_code=202)
    async def json_inbound_batch(request: Request,
                                 batch: Annotated[list[InboundSms], Len(1, MAX_BATCH)],
                                 ) -> JSONResponse:
        """Many at once, for a bridge that queues: a JSON array of the same objects, kept all
        or none (one invalid object refuses the batch). The answers in the same order."""
        _check_shortcodes(settings, batch)
        accepted = await _accept(request, batch)
        return JSONResponse([{"id": a.id, "duplicate": a.duplicate} for a in accepted],
                            status_code=202)

    @app.get("/healthz")
    def healthz() -> dict:
        """Alive: the process answers."""
        return {"status": "alive"}

    @app.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        """Ready: Redis and PostgreSQL answer and the migrations are current."""
        checks = {"redis": "ok", "postgresql": "ok", "migrations": "ok"}
        try:
            request.app.state.redis.ping()
        except redis.RedisError as error:
            checks["redis"] = type(error).__name__
        try:
            with request.app.state.ingest.pool.connection() as conn:
                missing = db.pending(conn)
            if missing:
                checks["migrations"] = "pending: " + ", ".join(missing)
        except psycopg.Error as error:
            checks["postgresql"] = checks["migrations"] = type(error).__name__
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        """Prometheus metrics, computed at scrape time."""
        return Response(generate_latest(request.app.state.metrics),
                        media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/messages/inbound/{inbound_id}/replies", dependencies=bridge)
    def inbound_replies(inbound_id: int, request: Request,
                        id: Annotated[str, Query(min_length=1, max_length=128)],
                        smsc: Annotated[str, Query(min_length=1, max_length=64)] = DEFAULT_SOURCE,
                        ) -> dict:
        """The reply parts of an inbound message and their states, for the bridge that handed
        it over: `?id=` its own message id and `&smsc=` the link (as it posted them), so our
        sequential ids alone do not open anyone's replies. `suppressed`: why it gets none,
        if the gateway left it unanswered (workers/suppression.py)."""
        with request.app.state.ingest.pool.connection() as conn:
            found = messages.replies_to(conn, inbound_id, source=smsc, external_id=id)
            suppressed = messages.suppressed_reason(conn, inbound_id) if found == [] else None
        if found is None:
            raise HTTPException(404, "no such message from this id and link")
        return {"replies": found, "suppressed": suppressed}

    return app
