"""The console's pages: server-rendered HTML (Jinja2), no script, one small stylesheet.

Every page but the sign-in is behind the door (door.py), which has already checked the
session, bounded and parsed the form and checked its CSRF token. A page reads what
`govsms trace`, `govsms status` and `govsms dead-letters` read, through the same
functions, and writes each search, view and replay to the audit trail. Nothing shown
holds a number or IIN in clear: the timelines come masked from workers/trace.py, the
rest is masked here.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from parsers import KeywordIndex
from replies.masking import mask_digits, mask_numbers
from services.registry import default_registry
from workers import audit, db, messages, redis_urls, retention, trace
from workers.app import create_app as create_celery
from workers.console import operators, sessions
from workers.console.door import CSRF_FIELD, PRESESSION_COOKIE, SESSION_COOKIE, ConsoleDoor
from workers.settings import Settings
from workers.status import picture
from workers.tasks import replay_dead_letters

log = logging.getLogger(__name__)

# Sign-ins refused to one name in this window, past which the console stops trying them.
SIGN_IN_WINDOW = dt.timedelta(minutes=15)
SIGN_IN_FAILURES = 10
SINCE = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7),
         "30d": dt.timedelta(days=30), "90d": dt.timedelta(days=90)}
KINDS = ("phone", "inbound", "outbound", "external")
UNKNOWN = "(unknown)"  # the audit's name for a sign-in under a name that is nobody's


class Console:
    """What the pages share: settings, the pool, Redis, Celery, the parser, the templates."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url and settings.redis_url
        self.settings = settings
        self.key = settings.key()
        self.csrf_key = sessions.csrf_key(self.key)
        self.phone = retention.masker(retention.digest_key(self.key))
        self.pool = db.create_pool(settings.database_url, max_size=4, name="govsms-console",
                                   statement_timeout_ms=settings.statement_timeout_ms,
                                   transaction_pooler=settings.database_transaction_pooler)
        self.redis = redis_urls.client(settings.redis_url, socket_timeout=2,
                                       socket_connect_timeout=2)
        self.celery = create_celery(settings)
        self.index = KeywordIndex.build(default_registry(), settings.shortcodes)
        env = jinja2.Environment(loader=jinja2.PackageLoader("workers.console"),
                                 autoescape=True, undefined=jinja2.StrictUndefined)
        env.filters["when"] = _when
        self.templates = Jinja2Templates(env=env)

    def session_operator(self, token: str) -> str | None:
        """The operator of a live session, if still an operator (an account removed from the
        settings ends its sessions)."""
        if not token:
            return None
        with db.autocommit(self.pool) as conn:
            name = sessions.operator_of(conn, token)
        return name if name is not None and name in operators.accounts(self.settings) else None

    def page(self, request: Request, template: str, status: int = 200, **context: Any
             ) -> Response:
        """`template` rendered for the signed-in operator, with the CSRF token its forms carry."""
        csrf = sessions.csrf_token(self.csrf_key, request.state.session)
        return self.templates.TemplateResponse(
            request, template, {"operator": request.state.operator, "csrf": csrf,
                                "csrf_field": CSRF_FIELD, **context}, status_code=status)

    def missing(self, request: Request, what: str) -> Response:
        """404: there is no `what`."""
        return self.page(request, "missing.html", what=what, status=404)

    def record(self, request: Request, action: str, asked: str,
               phone: audit.Phone | None = None) -> None:
        """Write down what the signed-in operator did."""
        with db.autocommit(self.pool) as conn:
            audit.record(conn, request.state.operator, action, asked, phone)

    def timelines(self, query: trace.Query) -> list[dict[str, Any]]:
        """The timelines `govsms trace` would print for `query`."""
        with db.autocommit(self.pool) as conn:
            return trace.timelines(conn, self.index, self.key, query,
                                   self.settings.regions.values())

    def close(self) -> None:
        """Close the pool and the Redis client (the app's lifespan ends)."""
        self.pool.close()
        self.redis.close()


def _when(iso: str) -> str:
    """An ISO time of a timeline as a person reads it: to the second, in UTC."""
    return f"{dt.datetime.fromisoformat(iso).astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _cookie(settings: Settings, response: Response, name: str, value: str, *, max_age: int,
            path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                        samesite="strict", secure=settings.console_secure_cookie)


def _signin_form(console: Console, request: Request, error: str | None = None,
                 status: int = 200) -> Response:
    nonce = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(32)
    response = console.templates.TemplateResponse(
        request, "signin.html", {"operator": None, "error": error, "csrf_field": CSRF_FIELD,
                                 "csrf": sessions.csrf_token(console.csrf_key, nonce)},
        status_code=status)
    _cookie(console.settings, response, PRESESSION_COOKIE, nonce, max_age=1800, path="/signin")
    return response


def signin_page(console: Console, request: Request) -> Response:
    """The sign-in form (GET), or signing in (POST: the door checked its CSRF token)."""
    if request.method == "GET":
        return _signin_form(console, request)
    form = request.state.form
    name, password = form.get("name", "").strip().lower(), form.get("password", "")
    hashes = operators.accounts(console.settings)
    who = name if name in hashes else UNKNOWN
    with db.autocommit(console.pool) as conn:
        since = dt.datetime.now(dt.UTC) - SIGN_IN_WINDOW
        if audit.refused_since(conn, who, since) >= SIGN_IN_FAILURES:
            log.warning("console sign-in refused: too many failures for one name")
            return _signin_form(console, request, "Too many failed sign-ins: wait 15 minutes.",
                                429)
        if not operators.verify(hashes, name, password):
            audit.record(conn, who, "sign_in_refused", "sign-in refused")
            return _signin_form(console, request, "Wrong name or password.", 401)
        token = sessions.open_session(conn, name, console.settings.console_session_s)
        audit.record(conn, name, "sign_in", "signed in")
    response = RedirectResponse("/", status_code=303)
    _cookie(console.settings, response, SESSION_COOKIE, token,
            max_age=console.settings.console_session_s)
    response.delete_cookie(PRESESSION_COOKIE, path="/signin")
    return response


def signout(console: Console, request: Request) -> Response:
    """End the session."""
    with db.autocommit(console.pool) as conn:
        sessions.close_session(conn, request.state.session)
        audit.record(conn, request.state.operator, "sign_out", "signed out")
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def status_page(console: Console, request: Request) -> Response:
    """The SLA picture of `govsms status`."""
    with db.autocommit(console.pool) as conn:
        now = picture(conn, console.redis, console.celery, console.settings,
                      dt.datetime.now(dt.UTC))
    peak = max((n for _, n in now.sent_per_minute), default=0)
    return console.page(request, "status.html", now=now, peak=peak)


def search_page(console: Console, request: Request) -> Response:
    """The search form (GET), or its answer (POST): the timelines of a phone or an id."""
    if request.method == "GET":
        return console.page(request, "search.html", asked=None, items=None, error=None,
                            kinds=KINDS, since=list(SINCE))
    form = request.state.form
    query, error = _query(console, form)
    if query is None:
        return console.page(request, "search.html", asked=None, items=None, error=error,
                            kinds=KINDS, since=list(SINCE), status=422)
    asked, phone = trace.asked(query, console.key, console.settings.regions.values())
    console.record(request, "search", asked, phone)
    return console.page(request, "search.html", asked=asked, items=console.timelines(query),
                        error=None, kinds=KINDS, since=list(SINCE))


def _query(console: Console, form: dict[str, str]) -> tuple[trace.Query | None, str]:
    kind, value = form.get("kind", "phone"), form.get("q", "").strip()
    since = dt.datetime.now(dt.UTC) - SINCE.get(form.get("since", "24h"), SINCE["24h"])
    if kind == "phone":
        if not trace.phone_forms(value, console.settings.regions.values()):
            return None, "Not a phone number of the senders' countries."
        return trace.Query(phone=value, since=since), ""
    if kind == "external":
        link, _, external = value.partition(":")
        if not link or not external:
            return None, "An external id is LINK:ID, the link (smsc) and the bridge's id."
        return trace.Query(external=(link, external)), ""
    if kind not in KINDS or not value.isdigit() or len(value) > 18:
        return None, "An id is a whole number."
    return trace.Query(**{kind: int(value)}), ""


def message_page(console: Console, request: Request) -> Response:
    """One message's timeline, by its inbound or outbound id."""
    table, message_id = request.path_params["table"], request.path_params["id"]
    if table not in ("inbound", "outbound"):
        return console.missing(request, "such a page")
    query = trace.Query(**{table: message_id})
    console.record(request, "view", f"{table} {message_id}")
    items = console.timelines(query)
    if not items:
        return console.missing(request, f"{table} message {message_id}")
    return console.page(request, "message.html", asked=f"{table} {message_id}", items=items)


def dead_letters_page(console: Console, request: Request) -> Response:
    """The dead letters, open ones (or all), newest first."""
    everything = request.query_params.get("all") == "1"
    with db.autocommit(console.pool) as conn:
        letters = messages.dead_letters(conn, include_replayed=everything)
    return console.page(request, "dead_letters.html", letters=letters[::-1],
                        everything=everything, mask=mask_numbers)


def dead_letter_page(console: Console, request: Request) -> Response:
    """One dead letter: its reason and its message (numbers masked, sealed texts hidden)."""
    letter_id = request.path_params["id"]
    with db.autocommit(console.pool) as conn:
        found = messages.dead_letters(conn, dead_letter_id=letter_id)
        if not found:
            return console.missing(request, f"dead letter {letter_id}")
        letter = found[0]
        described = [(table, message_id, {k: mask_digits(str(v)) for k, v in
                                          messages.describe(conn, table, message_id).items()})
                     for table, message_id in (("inbound", letter.inbound_id),
                                               ("outbound", letter.outbound_id))
                     if message_id is not None]
    console.record(request, "view", f"dead letter {letter_id}")
    return console.page(request, "dead_letter.html", letter=letter, described=described,
                        replayed=request.query_params.get("replayed"), mask=mask_numbers)


def replay(console: Console, request: Request) -> Response:
    """Replay one dead letter (POST), then show it."""
    letter_id = request.path_params["id"]
    with db.autocommit(console.pool) as conn:
        done = replay_dead_letters(console.celery, conn, letter_id)
    if done is None:
        return console.missing(request, f"dead letter {letter_id}")
    console.record(request, "replay", f"dead letter {letter_id}")
    return RedirectResponse(f"/dead-letters/{letter_id}?replayed=1", status_code=303)


def replay_all(console: Console, request: Request) -> Response:
    """Replay every open dead letter (POST), then list them."""
    with db.autocommit(console.pool) as conn:
        done = replay_dead_letters(console.celery, conn)
    assert done is not None
    console.record(request, "replay_all", f"{done[0]} dead letters")
    return RedirectResponse(f"/dead-letters?all=1&replayed={done[0]}", status_code=303)


def audit_page(console: Console, request: Request) -> Response:
    """The audit trail, newest first (GET); or what was done about one number (POST)."""
    digest, asked, error = None, None, None
    if request.method == "POST":
        forms = trace.phone_forms(request.state.form.get("phone", ""),
                                  console.settings.regions.values())
        if forms:
            masked, digest = console.phone(forms[0])
            asked = f"phone {masked}"
            console.record(request, "audit_search", asked, (masked, digest))
        else:
            error = "Not a phone number of the senders' countries."
    with db.autocommit(console.pool) as conn:
        entries = audit.entries(conn, phone_digest=digest)
    return console.page(request, "audit.html", entries=entries, asked=asked, error=error,
                        mask=mask_numbers, status=422 if error else 200)


def healthz(_: Request) -> Response:
    """Alive (no session needed): what `govsms run` waits for."""
    return PlainTextResponse("alive")


def stylesheet(_: Request) -> Response:
    """The one stylesheet (no session needed: the sign-in page uses it), cached an hour."""
    css = (resources.files("workers.console") / "console.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"cache-control": "max-age=3600"})


def create_app(settings: Settings) -> ConsoleDoor:
    """The console app behind its door."""
    console = Console(settings)

    def route(path: str, page: Callable[[Console, Request], Response],
              methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(path, partial(page, console), methods=list(methods))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        console.close()

    app = Starlette(routes=[
        Route("/healthz", healthz), Route("/console.css", stylesheet),
        route("/signin", signin_page, ("GET", "POST")), route("/signout", signout, ("POST",)),
        route("/", status_page), route("/search", search_page, ("GET", "POST")),
        route("/messages/{table:str}/{id:int}", message_page),
        route("/dead-letters", dead_letters_page),
        route("/dead-letters/replay-all", replay_all, ("POST",)),
        route("/dead-letters/{id:int}", dead_letter_page),
        route("/dead-letters/{id:int}/replay", replay, ("POST",)),
        route("/audit", audit_page, ("GET", "POST")),
    ], lifespan=lifespan)
    return ConsoleDoor(app, lookup=console.session_operator, csrf_key=console.csrf_key)
