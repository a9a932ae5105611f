"""The end-to-end tests' database: PostgreSQL itself, or, with GOVSMS_TEST_PGBOUNCER=1
(`make faults` runs them so once more), Debian's PgBouncer in transaction mode in front of
it, every connection of the gateway's processes and of the tests through it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.support.pgbouncer import missing, pgbouncer, remove


@pytest.fixture(scope="session")
def database_url(database_url: str) -> Iterator[str]:
    """The session's database (migrated directly), reached through PgBouncer if asked."""
    if os.environ.get("GOVSMS_TEST_PGBOUNCER") != "1":
        yield database_url
        return
    if missing() is not None:
        pytest.fail(missing())
    params = conninfo_to_dict(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Transaction mode: the statement timeout comes from the database, not the connection.
        conn.execute(f"ALTER DATABASE {params['dbname']} SET statement_timeout = '5s'")
    bouncer = pgbouncer(int(params.get("port", 5432))).start()
    os.environ["GOVSMS_DATABASE_TRANSACTION_POOLER"] = "true"
    try:
        yield bouncer.conninfo(params["dbname"])
    finally:
        os.environ.pop("GOVSMS_DATABASE_TRANSACTION_POOLER", None)
        remove(bouncer)
