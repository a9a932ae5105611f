"""The operators' console over HTTP: its door (session, bounds, CSRF), its pages, its audit.

The pages in a real browser are tests/e2e/test_console_browser.py's; here each refusal
and each page is checked from the HTTP side, against the session's PostgreSQL and a Redis
db of the test's own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from starlette.testclient import TestClient

from tests.support.keys import KEY
from tests.support.traces import CITIZEN, IIN, UNMASKED, made
from workers import audit, messages, retention
from workers.cli import main
from workers.console import operators
from workers.console.app import SIGN_IN_FAILURES, create_app
from workers.console.door import FORM_LIMIT
from workers.settings import NotAHash, Settings

NAME, PASSWORD = "aigerim", "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {NAME: operators.hashed(NAME, PASSWORD),
            "dana": operators.hashed("dana", PASSWORD + " 2")}


@pytest.fixture
def console_settings(settings, redis_client, hashes) -> Settings:
    kwargs = redis_client.connection_pool.connection_kwargs
    return settings.model_copy(update={
        "redis_url": f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}",
        "operators": {name: SecretStr(h) for name, h in hashes.items()}})


@pytest.fixture
def app(console_settings):
    with TestClient(create_app(console_settings), follow_redirects=False) as client:
        yield client


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, page
    return found[1]


def sign_in(client: TestClient, name: str = NAME, password: str = PASSWORD) -> str:
    """Sign in; the CSRF token of the session's forms."""
    token = csrf_of(client.get("/signin").text)
    answer = client.post("/signin", data={"csrf": token, "name": name, "password": password})
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    return csrf_of(client.get("/search").text)


PAGES = ["/", "/search", "/dead-letters", "/dead-letters/1", "/messages/inbound/1", "/audit"]
ACTIONS = ["/search", "/signout", "/dead-letters/1/replay", "/dead-letters/replay-all", "/audit"]


def test_every_page_and_action_is_behind_a_session(app, conn):
    for path in PAGES:
        answer = app.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/signin"), path
    for path in ACTIONS:
        answer = app.post(path, data={"csrf": "0" * 64})
        assert answer.status_code == 403 and answer.text == "403 not signed in\n", path
    assert audit.entries(conn) == []
    # The sign-in page, its stylesheet and the health check are the only doors open.
    assert [app.get(p).status_code for p in ("/signin", "/console.css", "/healthz")] == [200] * 3


def test_signing_in_sets_a_strict_httponly_expiring_cookie_and_keeps_no_token(app, conn):
    token = csrf_of(app.get("/signin").text)
    answer = app.post("/signin", data={"csrf": token, "name": NAME, "password": PASSWORD})
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie"
                  and v.startswith("govsms_console="))
    value = cookie.split(";")[0].split("=", 1)[1]
    assert {"HttpOnly", "SameSite=strict", "Max-Age=28800", "Path=/"} <= {
        part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # plain HTTP on loopback; GOVSMS_CONSOLE_SECURE_COOKIE adds it
    [(digest, operator)] = conn.execute("SELECT token_digest, operator FROM operator_sessions")
    assert operator == NAME and value.encode() not in bytes(digest)
    assert [(e.operator, e.action) for e in audit.entries(conn)] == [(NAME, "sign_in")]
    for header in ("content-security-policy", "x-frame-options", "cache-control"):
        assert header in answer.headers


def test_a_wrong_password_and_an_unknown_name_are_refused_alike(app, conn):
    for name, password in ((NAME, "not the password"), ("nobody", PASSWORD)):
        token = csrf_of(app.get("/signin").text)
        answer = app.post("/signin", data={"csrf": token, "name": name, "password": password})
        assert answer.status_code == 401 and "Wrong name or password." in answer.text
        assert "govsms_console=" not in answer.headers.get("set-cookie", "")
    assert [(e.operator, e.action) for e in audit.entries(conn)] == [
        ("(unknown)", "sign_in_refused"), (NAME, "sign_in_refused")]
    assert "nobody" not in repr(audit.entries(conn)) and PASSWORD not in repr(audit.entries(conn))


def test_sign_ins_stop_after_too_many_failures(app, conn):
    for _ in range(SIGN_IN_FAILURES):
        audit.record(conn, NAME, "sign_in_refused", "sign-in refused")
    token = csrf_of(app.get("/signin").text)
    answer = app.post("/signin", data={"csrf": token, "name": NAME, "password": PASSWORD})
    assert answer.status_code == 429 and "wait 15 minutes" in answer.text
    assert sign_in(app, "dana", PASSWORD + " 2")  # another name is not held up


def test_a_form_without_its_own_csrf_token_is_refused(app, console_settings, conn):
    # The sign-in form needs the pre-session cookie its page set, and that page's token.
    assert app.post("/signin", data={"name": NAME, "password": PASSWORD}).status_code == 403
    with TestClient(create_app(console_settings), follow_redirects=False) as other:
        foreign = sign_in(other, "dana", PASSWORD + " 2")
    token = sign_in(app)
    search = {"kind": "inbound", "q": "1"}
    for sent in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": foreign}):
        answer = app.post("/search", data={**search, **sent})
        assert answer.status_code == 403 and "CSRF" in answer.text, sent
    assert app.post("/search", data={**search, "csrf": token}).status_code == 200
    assert [e.action for e in audit.entries(conn)].count("search") == 1


def test_a_foreign_ended_or_expired_session_is_no_session(app, console_settings, conn, hashes):
    app.cookies.set("govsms_console", "forged-" + "x" * 40)
    assert app.get("/").status_code == 303
    app.cookies.clear()
    token = sign_in(app)
    assert app.get("/search").status_code == 200
    conn.execute("UPDATE operator_sessions SET expires_at = now() - interval '1 second'")
    assert app.get("/search").status_code == 303
    token = sign_in(app)
    assert app.post("/signout", data={"csrf": token}).headers["location"] == "/signin"
    assert conn.execute("SELECT count(*) FROM operator_sessions").fetchone()[0] == 0
    # An operator taken out of the settings is signed out at once.
    sign_in(app, "dana", PASSWORD + " 2")
    remaining = {NAME: SecretStr(hashes[NAME])}
    with TestClient(create_app(console_settings.model_copy(update={"operators": remaining})),
                    follow_redirects=False, cookies=dict(app.cookies)) as after:
        assert after.get("/search").status_code == 303


def test_the_door_bounds_a_form_before_it_reads_it(app):
    token = sign_in(app)
    huge = {"csrf": token, "q": "1" * FORM_LIMIT}
    assert app.post("/search", data=huge).status_code == 413
    assert app.post("/search", content=b"q=1", headers={
        "content-type": "application/json", "content-length": "3"}).status_code == 415
    assert app.post("/search", data={"csrf": token, "q": "1"},
                    headers={"origin": "https://evil.example"}).status_code == 403

    def chunks():
        yield b"csrf=" + token.encode()

    assert app.post("/search", content=chunks(), headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 411
    assert app.put("/search", data={"csrf": token}).status_code == 405


def test_a_search_shows_every_timeline_masked_and_is_audited(app, conn, database_url):
    ids = made(conn, database_url)
    token = sign_in(app)
    page = app.post("/search", data={"csrf": token, "kind": "phone", "q": "8 701 999 00 01",
                                     "since": "24h"}).text
    for kind, message_id in ids.items():
        if kind not in ("suppressed", "notice"):
            assert f"inbound {message_id}</a>" in page, kind
    assert f"sms {ids['notice']}</a>" in page and "POSSIBLE DUPLICATE" in page
    assert "receipt delivered" in page and "the client&#39;s text, 6 characters" in page
    assert UNMASKED.findall(page) == [] and IIN not in page and "999 00 01" not in page
    entry = audit.entries(conn)[0]
    assert (entry.operator, entry.action, entry.phone_masked) == (NAME, "search", "+7701***0001")
    # One message by its id; a number that is no number is said so, and not echoed.
    page = app.get(f"/messages/inbound/{ids['undeliverable']}").text
    assert "receipt undeliverable" in page and "123***01" in page and "ABC" not in page
    assert app.get("/messages/inbound/999999").status_code == 404
    answer = app.post("/search", data={"csrf": token, "kind": "phone", "q": "12345678901234"})
    assert answer.status_code == 422 and "12345678901234" not in answer.text


def test_purged_messages_are_found_by_their_numbers_digest_and_shown_as_purged(app, conn,
                                                                               database_url):
    ids = made(conn, database_url)
    retention.purge(conn, retention.digest_key(KEY), dt.datetime.now(dt.UTC))
    token = sign_in(app)
    page = app.post("/search", data={"csrf": token, "kind": "phone", "q": CITIZEN}).text
    assert f"inbound {ids['answered']}</a>" in page and page.count(">purged</span>") >= 6
    assert "(purged)" in page and "Parsed:" not in page and UNMASKED.findall(page) == []


def test_dead_letters_are_listed_shown_and_replayed_once(app, conn, database_url,
                                                         redis_client):
    ids = made(conn, database_url)
    letter = messages.add_dead_letter(conn, task="govsms.answer", inbound_id=ids["not_found"],
                                      reason=f"ValueError for {CITIZEN}")
    token = sign_in(app)
    listed = app.get("/dead-letters").text
    assert f'href="/dead-letters/{letter}"' in listed and "+7701***0001" in listed
    shown = app.get(f"/dead-letters/{letter}").text
    assert "ValueError for +7701***0001" in shown and UNMASKED.findall(shown) == []
    answer = app.post(f"/dead-letters/{letter}/replay", data={"csrf": token})
    assert answer.headers["location"] == f"/dead-letters/{letter}?replayed=1"
    again = conn.execute("SELECT id FROM inbound WHERE external_id = %s",
                         (f"dead-letter:{letter}",)).fetchall()
    assert len(again) == 1 and redis_client.llen("inbound") == 1
    assert "Replay</button>" not in app.get(f"/dead-letters/{letter}?replayed=1").text
    app.post(f"/dead-letters/{letter}/replay", data={"csrf": token})  # a second click: nothing
    assert conn.execute("SELECT count(*) FROM inbound WHERE external_id = %s",
                        (f"dead-letter:{letter}",)).fetchone()[0] == 1
    messages.add_dead_letter(conn, task="govsms.answer", inbound_id=ids["answered"], reason="x")
    assert app.post("/dead-letters/replay-all", data={"csrf": token}).status_code == 303
    assert messages.open_dead_letters(conn) == 0
    actions = [e.action for e in audit.entries(conn)]
    assert (actions[0], actions.count("replay")) == ("replay_all", 2)


def test_the_status_page_and_the_audit_trail(app, conn, database_url):
    made(conn, database_url)
    token = sign_in(app)
    status = app.get("/").text
    assert "Queues" in status and "inbound" in status and "Sent per minute" in status
    assert "<progress max=" in status  # a bar for the minute the test's replies went out
    assert "dead letters not replayed" in status
    app.post("/search", data={"csrf": token, "kind": "phone", "q": CITIZEN})
    app.post("/search", data={"csrf": token, "kind": "inbound", "q": "1"})
    trail = app.post("/audit", data={"csrf": token, "phone": "87019990001"}).text
    assert trail.count("<td>search</td>") == 1 and "+7701***0001" in trail
    assert UNMASKED.findall(trail) == []
    assert app.get("/audit").text.count("<td>search</td>") == 2


def test_operator_add_keeps_only_an_argon2id_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVSMS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GOVSMS_OPERATOR_PASSWORD", PASSWORD)
    done = CliRunner().invoke(main, ["operator", "add", NAME])
    assert done.exit_code == 0, done.output
    path = tmp_path / operators.OPERATORS_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = json.loads(path.read_text())[NAME]
    assert stored.startswith("$argon2id$") and PASSWORD not in path.read_text()
    assert operators.verify(operators.accounts(Settings(data_dir=tmp_path)), NAME, PASSWORD)
    monkeypatch.setenv("GOVSMS_OPERATOR_PASSWORD", "short")
    refused = CliRunner().invoke(main, ["operator", "add", "dana"])
    assert refused.exit_code == 2 and "shorter than 12" in refused.output


def test_a_password_where_its_hash_belongs_stops_the_process(monkeypatch):
    monkeypatch.setenv("GOVSMS_OPERATORS", json.dumps({NAME: PASSWORD}))
    with pytest.raises(NotAHash) as stopped:
        Settings()
    message = str(stopped.value)
    assert PASSWORD not in message and "GOVSMS_OPERATORS['aigerim']" in message
