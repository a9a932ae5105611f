"""PostgreSQL: the connection pool and the versioned migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

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


def create_pool(conninfo: str, *, statement_timeout_ms: int, max_size: int = 4,
                name: str = "govsms", wait_s: float = 5.0) -> ConnectionPool:
    """A pool whose every connection has a statement timeout; waits at most `wait_s` for one."""
    pool = ConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        name=name,
        timeout=wait_s,
        # A connection that died with its server (a restart) is replaced, not handed out.
        check=ConnectionPool.check_connection,
        kwargs={"options": f"-c statement_timeout={statement_timeout_ms}", "connect_timeout": 5},
        open=False,
    )
    pool.open(wait=False)
    return pool
