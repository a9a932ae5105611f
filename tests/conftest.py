"""Shared fixtures: a private PostgreSQL database and Redis db per test session, real servers.

The servers come from GOVSMS_TEST_DATABASE_URL (an admin connection; default the
local postgres database) and GOVSMS_TEST_REDIS_URL (default the local Redis);
`make test` makes sure both are up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from workers import db
from workers.settings import Settings

ADMIN_URL = os.environ.get("GOVSMS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("GOVSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SECRET = "test-bridge-secret"
# Tables emptied between tests, children first.
TABLES = ("dead_letters", "outbound", "inbound", "mbg.subscribers", "persons.individuals",
          "housing.queue")


def _with_db(url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=name)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at its end."""
    name = f"govsms_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(ADMIN_URL, name)
    db.migrate(url)
    yield url
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis db no other test session uses: claimed with SET NX, flushed, released at the end."""
    claim = f"govsms:test-session:{uuid.uuid4().hex}"
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.set("govsms:test-claim", claim, nx=True, ex=3600):
            client.flushdb()
            client.set("govsms:test-claim", claim, ex=3600)
            try:
                yield f"{REDIS_URL}/{number}"
            finally:
                client.flushdb()
            return
    pytest.fail("no free Redis db among 1-15 for this test session")


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the session database, emptied before the test."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        yield connection


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session's database and Redis db, with a file transport."""
    return Settings(database_url=database_url, redis_url=redis_url, data_dir=tmp_path,
                    bridge_secret=SECRET, transport=f"file://{tmp_path / 'outbox.jsonl'}")


def add_persona(conn: psycopg.Connection, *, phone: str, iin: str, status: str = "valid",
                housing: int | None = None) -> None:
    """A citizen in MBG and the register of individuals, optionally in the housing queue."""
    conn.execute("INSERT INTO mbg.subscribers (phone, iin) VALUES (%s, %s)", (phone, iin))
    conn.execute("INSERT INTO persons.individuals VALUES (%s, 'Test Person', '1988-01-02', %s) "
                 "ON CONFLICT DO NOTHING", (iin, status))
    if housing is not None:
        conn.execute("INSERT INTO housing.queue VALUES (%s, %s, 'general', '2019-03-12', "
                     "'Akimat of Astana')", (iin, housing))
