"""The console's sessions, kept in PostgreSQL so they survive a restart and any of several
console processes knows them; a row holds the SHA-256 of the cookie's token, never the token.

The CSRF token of a session is an HMAC of its token under a key derived from the server's,
so it needs no storage and is worthless with any other session (the synchronizer token
pattern); the sign-in form's is bound the same way to a pre-session cookie.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import psycopg

from replies.sealing import derive

_OPEN = """
WITH expired AS (DELETE FROM operator_sessions WHERE expires_at < now())
INSERT INTO operator_sessions (token_digest, operator, expires_at) VALUES (%s, %s, %s)
"""
_OPERATOR = "SELECT operator FROM operator_sessions WHERE token_digest = %s AND expires_at > now()"
_CLOSE = "DELETE FROM operator_sessions WHERE token_digest = %s"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def open_session(conn: psycopg.Connection, operator: str, lifetime_s: int) -> str:
    """A new session of `operator` for `lifetime_s`: its token, for the cookie alone."""
    token = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime_s)
    conn.execute(_OPEN, (_digest(token), operator, expires))
    return token


def operator_of(conn: psycopg.Connection, token: str) -> str | None:
    """Whose session `token` is, while it lasts; None for an unknown, ended or expired one."""
    if not token:
        return None
    row = conn.execute(_OPERATOR, (_digest(token),)).fetchone()
    return row[0] if row else None


def close_session(conn: psycopg.Connection, token: str) -> None:
    """End the session of `token` (signing out)."""
    conn.execute(_CLOSE, (_digest(token),))


def csrf_key(secret_key: str) -> bytes:
    """The key of the console's CSRF tokens, derived from the server's."""
    return derive(secret_key, "govsms/console-csrf")


def csrf_token(key: bytes, bound_to: str) -> str:
    """The CSRF token of the session (or pre-session) whose token is `bound_to`."""
    return hmac.new(key, bound_to.encode(), hashlib.sha256).hexdigest()
