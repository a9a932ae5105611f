"""Servers of a test's own: a fresh database, a free Redis db, a process the test may kill."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from workers.local import embedded


@contextmanager
def new_database(admin_url: str, prefix: str) -> Iterator[str]:
    """An empty database, dropped afterwards (whoever is still connected)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def claimed_redis_db(redis_server: str) -> Iterator[str]:
    """A Redis db nobody else uses: claimed with SET NX, flushed, released at the end."""
    claim = f"govsms:test-session:{uuid.uuid4().hex}"
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{redis_server}/{number}")
        if client.set("govsms:test-claim", claim, nx=True, ex=3600):
            client.flushdb()
            client.set("govsms:test-claim", claim, ex=3600)
            try:
                yield f"{redis_server}/{number}"
            finally:
                client.flushdb()
            return
    pytest.fail("no free Redis db among 1-15 for this test session")


@dataclass
class Server:
    """A private server process: kill it, stall it, start it again on the same port and data."""

    spec: embedded.ServerSpec
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.process = subprocess.Popen(self.spec.argv, stdout=self.log.open("ab"),
                                        stderr=subprocess.STDOUT, cwd="/", user=self.spec.user,
                                        group=self.spec.group,
                                        extra_groups=None if self.spec.user is None else [])
        embedded.wait_ready(self.spec, lambda: self.process.poll() is None)
        return self

    def kill(self) -> None:
        """kill -9."""
        self.process.kill()
        self.process.wait()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            # PostgreSQL's fast shutdown does not wait for its clients to leave.
            self.process.send_signal(signal.SIGINT if self.spec.name == "postgres"
                                     else signal.SIGTERM)
            self.process.wait(30)
