"""Migrations: versioned, recorded, idempotent, safe to run twice at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from workers import db


def test_migrate_applies_each_version_once(empty_database):
    versions = [v for v, _ in db.migrations()]
    assert versions == sorted(versions) and versions[0] == "0001_message_store"
    assert db.migrate(empty_database) == versions
    assert db.migrate(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")] \
            == versions
        assert db.pending(conn) == []


def test_two_migrations_at_once_apply_everything_once(empty_database):
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(db.migrate(empty_database)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v for r in results for v in r) == [v for v, _ in db.migrations()]


def test_inbound_is_unique_per_source_and_id_and_outbound_per_part(conn):
    insert = ("INSERT INTO inbound (source, external_id, sender, shortcode, text) "
              "VALUES (%s, 'x', '+7', '1414', '') RETURNING id")
    inbound_id, = conn.execute(insert, ("a",)).fetchone()
    conn.execute(insert, ("b",))
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, ("a",))
    reply = ("INSERT INTO outbound (inbound_id, part, sender, recipient, text, deadline) "
             "VALUES (%s, %s, '1414', '+7', 't', now())")
    conn.execute(reply, (inbound_id, 1))
    conn.execute(reply, (inbound_id, 2))
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(reply, (inbound_id, 1))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE outbound SET state = 'lost'")


def test_db_migrate_takes_its_own_url_when_given(empty_database, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from workers.cli import main

    # The runtime URL leads nowhere: the migrations must go by their own.
    monkeypatch.setenv("GOVSMS_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("GOVSMS_DATABASE_MIGRATE_URL", empty_database)
    monkeypatch.setenv("GOVSMS_DATA_DIR", str(tmp_path))
    done = CliRunner().invoke(main, ["db", "migrate"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("applied: 0001_message_store")
    with psycopg.connect(empty_database) as conn:
        assert db.pending(conn) == []


def test_a_connection_without_a_statement_timeout_is_reported_once(database_url, caplog,
                                                                    monkeypatch):
    # Through a transaction-mode pooler the timeout comes from the role, or from nowhere.
    monkeypatch.setattr(db, "_timeout_checked", False)
    with psycopg.connect(database_url, options="-c statement_timeout=0") as conn:
        db.check_statement_timeout(conn)
        db.check_statement_timeout(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert caplog.text.count("statements have no time limit") == 1
    monkeypatch.setattr(db, "_timeout_checked", False)
    caplog.clear()
    with psycopg.connect(database_url, options="-c statement_timeout=5000") as conn:
        db.check_statement_timeout(conn)
    assert "no time limit" not in caplog.text
