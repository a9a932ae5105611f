"""PgBouncer in transaction mode between the gateway and PostgreSQL: every connection of the
ingest and the workers through Debian's PgBouncer 1.18, as a managed database puts it in
front; then PgBouncer killed and started again under load: nothing acknowledged without
its reply, nothing sent twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.support.gateway import wait_for
from tests.support.load import (
    Posted,
    all_answered,
    ids,
    outcome,
    post,
    realistic,
    retry_refused,
)
from tests.support.pgbouncer import PgBouncer, missing, pgbouncer, remove
from workers import db

DOWN_S = 8  # longer than the ingest waits for a connection

pytestmark = [pytest.mark.e2e, pytest.mark.fault,
              pytest.mark.skipif(missing() is not None, reason=str(missing()))]


@pytest.fixture
def bouncer(database_url: str, conn) -> Iterator[PgBouncer]:
    """PgBouncer in front of the session's server; the test database's statement timeout
    set on the database, as transaction mode needs (the connection cannot carry it)."""
    params = conninfo_to_dict(database_url)
    conn.execute(f"ALTER DATABASE {params['dbname']} SET statement_timeout = '5s'")
    started = pgbouncer(int(params.get("port", 5432))).start()
    yield started
    remove(started)


def through(bouncer: PgBouncer, database_url: str) -> str:
    return bouncer.conninfo(conninfo_to_dict(database_url)["dbname"])


# Slow: make faults runs it, and every end-to-end test once more through PgBouncer; make
# test keeps the quick proof below that a transaction-mode pooler needs the setting.
@pytest.mark.slow
def test_the_gateway_answers_through_pgbouncer_in_transaction_mode(bouncer, database_url,
                                                                   redis_url, gateway_on,
                                                                   conn):
    url = through(bouncer, database_url)
    # What a connection of the gateway sends: PgBouncer 1.18 refuses a startup option...
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(url, **db.connect_kwargs(statement_timeout_ms=5000)).close()
    # ...so through it the timeout is the database's (or the role's).
    with db.connect(url, transaction_pooler=True,
                    **db.connect_kwargs(statement_timeout_ms=5000, transaction_pooler=True)
                    ) as direct:
        assert direct.execute("SHOW statement_timeout").fetchone() == ("5s",)
    gw = gateway_on(redis_url, database=url, GOVSMS_DATABASE_TRANSACTION_POOLER="true")
    messages = ids("bouncer", 300)
    posted = Posted()
    post(gw, messages, posted, bodies=realistic(messages))
    retry_refused(gw, posted, messages, bodies=realistic(messages))
    wait_for(lambda: all_answered(gw, conn, len(messages)), 60, "every message answered")
    result = outcome(gw, conn)
    result.show("through pgbouncer (transaction mode)")
    assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
        300, 300, 300, 0)
    # Each service ran its queries through it (the mix asks every registry).
    services = {row[0] for row in conn.execute("SELECT DISTINCT service FROM inbound")}
    assert {"tech_inspection", "kindergarten_queue", "housing_queue"} <= services
    assert "prepared statement" not in "".join(gw.log(n) for n in gw.processes)


def test_a_prepared_statement_does_not_survive_transaction_pooling(database_url):
    # Two clients on one server connection (a pool of one): what psycopg prepares for one
    # (it does after 5 runs of a query; here at once) collides with the other's.
    single = pgbouncer(int(conninfo_to_dict(database_url).get("port", 5432)), pool_size=1)
    try:
        url = through(single.start(), database_url)
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as a, \
                psycopg.connect(url, autocommit=True, prepare_threshold=0) as b:
            a.execute("SELECT 1 + %s", (1,))
            with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
                b.execute("SELECT 1 + %s", (1,))
        # The gateway's connections through a transaction-mode pooler prepare nothing.
        with db.connect(url, transaction_pooler=True, autocommit=True) as a, \
                db.connect(url, transaction_pooler=True, autocommit=True) as b:
            for n in range(10):
                assert a.execute("SELECT 1 + %s", (n,)).fetchone() == b.execute(
                    "SELECT 1 + %s", (n,)).fetchone() == (1 + n,)
    finally:
        remove(single)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pgbouncer_killed_and_started_again_under_load_loses_nothing(bouncer, database_url,
                                                                     redis_url, gateway_on,
                                                                     conn):
    gw = gateway_on(redis_url, database=through(bouncer, database_url), beat=True,
                    GOVSMS_DATABASE_TRANSACTION_POOLER="true", GOVSMS_RECONCILE_EVERY_S="2",
                    GOVSMS_RECONCILE_AFTER_S="5")
    messages = ids("bouncer-kill", 2000)
    bodies = realistic(messages)
    posted = Posted()
    load = threading.Thread(target=post, args=(gw, messages, posted),
                            kwargs={"rate": 100, "bodies": bodies})
    load.start()
    time.sleep(6)
    bouncer.kill()
    time.sleep(DOWN_S)
    bouncer.start()
    load.join()
    refused = len(posted.refused)
    retry_refused(gw, posted, messages, bodies=bodies)
    wait_for(lambda: all_answered(gw, conn, len(messages)), 120, "every message answered")
    result = outcome(gw, conn)
    result.show(f"pgbouncer killed {DOWN_S} s under 100 messages/s", refused_while_down=refused)
    # Past its pool's wait (5 s) the ingest said 503 to what it could not record.
    assert refused > 0
    assert set(posted.accepted) == set(messages)
    assert (result.inbound, result.answered, result.sms_sent, result.duplicates_sent) == (
        2000, 2000, 2000, 0)
    assert [name for name, p in gw.processes.items() if p.poll() is not None] == []
