"""PostgreSQL: the connection pool and the versioned migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# Two processes migrating at once take turns on this lock.
_LOCK = "SELECT pg_advisory_lock(hashtext('govsms.migrate'))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext('govsms.migrate'))"
_APPLIED = "SELECT version FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version) VALUES (%s)"


@contextmanager
def autocommit(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection on which each statement, or `conn.transaction()` block, commits
    by itself; handed back to the pool as it came, with nothing left open."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.autocommit = False


def migrations() -> list[tuple[str, str]]:
    """The migration files shipped with the package, as (version, sql), in order."""
    folder = resources.files("workers") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(conninfo: str) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their versions."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(_LOCK)
        try:
            conn.execute(_MIGRATIONS_TABLE)
            done = {row[0] for row in conn.execute(_APPLIED)}
            for version, sql in migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(_RECORD, (version,))
                applied_now.append(version)
                log.info("applied migration %s", version)
        finally:
            conn.execute(_UNLOCK)
    return applied_now


def pending(conn: psycopg.Connection) -> list[str]:
    """Versions shipped but not applied to the database behind `conn` (reads only)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    done = {row[0] for row in conn.execute(_APPLIED)} if exists and exists[0] else set()
    return [version for version, _ in migrations() if version not in done]


def connect_kwargs(*, statement_timeout_ms: int, transaction_pooler: bool = False
                   ) -> dict[str, Any]:
    """What a connection needs beyond its URL: the statement timeout on it; through a
    transaction-mode pooler, no prepared statements and no startup options instead.

    A pooler in transaction mode (PgBouncer's `pool_mode = transaction`) hands each
    transaction to whichever server connection is free: a statement psycopg prepared on
    one (it does after 5 runs of the same query) is missing on the next, and PgBouncer
    1.18 refuses the `options` startup parameter outright. The statement timeout then
    comes from the role (`ALTER ROLE govsms SET statement_timeout = '5s'`), which every
    server connection the pooler opens starts with; `check_statement_timeout` says so
    when it is missing.
    """
    if transaction_pooler:
        return {"prepare_threshold": None, "connect_timeout": 5}
    return {"options": f"-c statement_timeout={statement_timeout_ms}", "connect_timeout": 5}


def connect(conninfo: str, *, transaction_pooler: bool = False, **kwargs: Any
            ) -> psycopg.Connection:
    """One connection (a command's own): through a transaction-mode pooler, without
    prepared statements (`connect_kwargs`)."""
    if transaction_pooler:
        kwargs["prepare_threshold"] = None
    return psycopg.connect(conninfo, **kwargs)


def check_statement_timeout(conn: psycopg.Connection) -> None:
    """Warn (once a process) when statements on `conn` have no time limit: through a
    transaction-mode pooler, the role must carry it."""
    global _timeout_checked
    if _timeout_checked:
        return
    row = conn.execute("SHOW statement_timeout").fetchone()
    conn.rollback()
    _timeout_checked = True
    if row is not None and row[0] in ("0", "0ms"):
        log.warning("statements have no time limit through the transaction-mode pooler: "
                    "set one on the role (ALTER ROLE ... SET statement_timeout = '5s'); "
                    "GOVSMS_STATEMENT_TIMEOUT_MS cannot ride on the connection there")


_timeout_checked = False


def create_pool(conninfo: str, *, statement_timeout_ms: int, max_size: int = 4,
                name: str = "govsms", wait_s: float = 5.0,
                transaction_pooler: bool = False) -> ConnectionPool:
    """A pool whose every connection has a statement timeout (through a transaction-mode
    pooler, the role's: `connect_kwargs`); waits at most `wait_s` for one."""
    pool = ConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        name=name,
        timeout=wait_s,
        # A connection that died with its server (a restart) is replaced, not handed out.
        check=ConnectionPool.check_connection,
        kwargs=connect_kwargs(statement_timeout_ms=statement_timeout_ms,
                              transaction_pooler=transaction_pooler),
        configure=check_statement_timeout if transaction_pooler else None,
        open=False,
    )
    pool.open(wait=False)
    return pool
