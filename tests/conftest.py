"""Shared fixtures: a private PostgreSQL database and Redis db per test session, real servers.

The servers come from GOVSMS_TEST_DATABASE_URL (an admin connection) and
GOVSMS_TEST_REDIS_URL when set; else the local ones on their standard ports
when they answer; else the session starts its own, as `govsms run` does
(`make test` installs the binaries when the machine lacks them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support.keys import KEY, SECRET
from tests.support.servers import claimed_redis_db, new_database
from workers import db
from workers.local import embedded
from workers.settings import Settings

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379"
# Tables emptied between tests, children first.
TABLES = ("dead_letters", "outbound", "inbound", "mbg.subscribers", "persons.individuals",
          "housing.queue", "vehicles.inspections", "kindergarten.queue", "accounts.citizens",
          "otp.codes", "receipts", "otp.failures", "mbg.changes", "api.usage", "api.idempotency",
          "suppressions", "callbacks", "audit", "operator_sessions")


def _postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def own_servers() -> Iterator[Path]:
    """A folder for servers this session starts itself (reachable by an unprivileged PostgreSQL)."""
    folder = Path(tempfile.mkdtemp(prefix="govsms-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _start(spec: embedded.ServerSpec, folder: Path) -> subprocess.Popen:
    log = (folder / f"{spec.name}.log").open("ab")
    process = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT, cwd="/",
                               user=spec.user, group=spec.group,
                               extra_groups=None if spec.user is None else [])
    embedded.wait_ready(spec, lambda: process.poll() is None)
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="session")
def admin_url(own_servers: Path) -> Iterator[str]:
    """An admin connection to a PostgreSQL server: configured, local, or started here."""
    url = os.environ.get("GOVSMS_TEST_DATABASE_URL")
    if url or _postgres_answers(LOCAL_POSTGRES):
        yield url or LOCAL_POSTGRES
        return
    spec = embedded.postgres_spec(own_servers)
    process = _start(spec, own_servers)
    try:
        yield psycopg.conninfo.make_conninfo(spec.admin_url, dbname="postgres")
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def redis_server(own_servers: Path) -> Iterator[str]:
    """A Redis server URL without a db number: configured, local, or started here."""
    url = os.environ.get("GOVSMS_TEST_REDIS_URL")
    if url or _redis_answers(LOCAL_REDIS):
        yield (url or LOCAL_REDIS).rstrip("/")
        return
    spec = embedded.redis_spec(own_servers)
    process = _start(spec, own_servers)
    try:
        yield spec.url.rsplit("/", 1)[0]
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at its end."""
    with new_database(admin_url, "govsms_test") as url:
        db.migrate(url)
        yield url


@pytest.fixture
def empty_database(admin_url: str) -> Iterator[str]:
    """A database of this test's own, with no migrations applied."""
    with new_database(admin_url, "govsms_empty") as url:
        yield url


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A client of a Redis db of this test alone, emptied before and after."""
    with claimed_redis_db(redis_server) as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: str) -> Iterator[str]:
    """The Redis db of this test session."""
    with claimed_redis_db(redis_server) as url:
        yield url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the session database, emptied before the test."""
    # No prepared statements: the e2e tests may run through a transaction-mode PgBouncer.
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as connection:
        for attempt in range(5):
            try:  # a worker of the previous test may still hold a row lock or two
                connection.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise
        yield connection


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session's database and Redis db, with a file transport."""
    return Settings(database_url=database_url, redis_url=redis_url, data_dir=tmp_path,
                    bridge_secret=SECRET, secret_key=KEY,
                    transport=f"file://{tmp_path / 'outbox.jsonl'}")
