"""Retention: `govsms purge` removes the texts and numbers of old messages and keeps their
counts; on the real PostgreSQL and Redis, checked against a pg_dump of the database."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import redis
from click.testing import CliRunner

from replies.transports.fake import MemoryTransport
from services.stores import otp
from tests.support.keys import KEY
from tests.support.pipeline import make_pipeline, receive
from workers import messages, pipeline, retention
from workers.app import _schedule
from workers.cli import main
from workers.local.embedded import postgres_bindir
from workers.messages import metrics, reports
from workers.replay import Message, Parsed, create_run
from workers.settings import Settings
from workers.suppression import Guard

# Numbers, IINs, a plate and texts no registry of the test database holds: after the purge
# the whole database must not hold them in any form.
CITIZEN, OTHER, CLIENT_TO = "+77019990001", "+77019990002", "+77019990003"
IIN, PLATE = "880102300452", "123ABC01"
TEXTS = {"4 " + IIN: CITIZEN, "Техосмотр " + PLATE: CITIZEN, "hello there": OTHER,
         "Balans 100 tg": "BEELINE"}
NOTICE = "Vash dokument gotov, zaberite ego v CON nomer 7"
SECRETS_IN_FORMS = [CITIZEN, OTHER, CLIENT_TO, IIN, PLATE, NOTICE, "Balans 100 tg",
                    "hello there", *(p.removeprefix("+") for p in (CITIZEN, OTHER, CLIENT_TO)),
                    "87019990001", "9990001", "9990002", "9990003"]


@pytest.fixture
def env(monkeypatch, database_url, redis_client, tmp_path):
    url = redis_client.connection_pool.connection_kwargs
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    monkeypatch.setenv("GOVSMS_REDIS_URL", f"redis://{url['host']}:{url['port']}/{url['db']}")
    monkeypatch.setenv("GOVSMS_SECRET_KEY", KEY)
    monkeypatch.setenv("GOVSMS_DATA_DIR", str(tmp_path))


def figures(conn: psycopg.Connection) -> dict:
    """What must not change: fees, the metrics' counts, the SLA, the suppressions."""
    now = dt.datetime.now(dt.UTC)
    return {"fees": messages.fees(conn, "8188", now - dt.timedelta(days=1), now),
            "routed": sorted(metrics.routed(conn)), "finished": sorted(metrics.finished(conn)),
            "latency": metrics.latency(conn), "delivery": metrics.delivery(conn),
            "dead": metrics.dead_by_task(conn), "suppressed": metrics.suppressed(conn),
            "sla": messages.sla(conn, now - dt.timedelta(days=1), now),
            "integrity": reports.integrity(conn, "%")}


def every_kind(conn: psycopg.Connection, database_url: str, redis_client: redis.Redis) -> list[int]:
    """Answered, not found, suppressed and dead-lettered MOs, a client's SMS, a one-time
    code with a failed check, a replay run's items, the SMPP transport's note on a part."""
    p = make_pipeline(database_url)
    p = pipeline.Pipeline(**{**{f: getattr(p, f) for f in p.__slots__},
                             "guard": Guard(frozenset({"1414", "8188"}))})
    try:
        ids = [receive(conn, text, sender=sender, external_id=str(n))
               for n, (text, sender) in enumerate(TEXTS.items())]
        routed = pipeline.dispatch(p, ids)
        queued = list(routed.outbound)
        for service, service_ids in routed.services.items():
            queued += pipeline.answer(p, service, service_ids)
        dead = receive(conn, "Очередь на жилье " + IIN, sender=OTHER, external_id="dead")
        messages.add_dead_letter(conn, task="answer", inbound_id=dead, reason="KeyError in x")
        conn.execute("UPDATE inbound SET state = 'dead' WHERE id = %s", (dead,))
        notice, _ = messages.add_notice(
            conn, key="notice-1", sender="EGOV", recipient=CLIENT_TO, client="portal",
            parts=pipeline.to_parts(NOTICE, p.sealer), deadline=dt.datetime.now(dt.UTC))
        queued += notice
        pipeline.deliver(p.pool, MemoryTransport(), p.sealer, queued)
    finally:
        p.pool.close()
    now = dt.datetime.now(dt.UTC)
    otp.replace(conn, client="portal", phone=CLIENT_TO, purpose="link_number", iin=IIN,
                code_hash="h" * 64, now=now, expires_at=now + dt.timedelta(minutes=10))
    otp.record_failure(conn, CLIENT_TO, now)
    create_run(conn, "dry-run", None, [Parsed("log.csv", "csv", [Message(
        "log.csv", 2, "k1", now, CITIZEN, "1414", "4 " + IIN, "Ochered...")])], {})
    redis_client.hset(f"govsms:smpp:link:unanswered:{notice[0]}:1", "unanswered", 1)
    return ids


def dump(database_url: str) -> str:
    # Beside the server's own binaries (a link to them resolved), else on the PATH.
    binary = (postgres_bindir() / "initdb").resolve().parent / "pg_dump"
    if not binary.exists():
        binary = Path(shutil.which("pg_dump") or "pg_dump")
    out = subprocess.run([str(binary), "--data-only", "--dbname", database_url],
                         capture_output=True, text=True, check=True).stdout
    # Newer pg_dump fences its output with a random token: not the data.
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def test_purge_leaves_no_number_iin_plate_or_text_and_the_same_counts(conn, database_url,
                                                                      redis_client, env, caplog):
    every_kind(conn, database_url, redis_client)
    before = figures(conn)
    assert [s for s in SECRETS_IN_FORMS if s in dump(database_url)] != []  # there to purge

    caplog.set_level("DEBUG")
    result = CliRunner().invoke(main, ["purge", "--older-than", "0s"])
    assert result.exit_code == 0, result.output
    assert "purged 5 inbound, 4 SMS, 2 one-time codes and failed checks, 1 replay items, " \
           "1 callbacks, 1 Redis keys" in result.output

    assert [s for s in SECRETS_IN_FORMS if s in dump(database_url)] == []
    assert figures(conn) == before
    assert [s for s in SECRETS_IN_FORMS if s in caplog.text + result.output] == []
    assert redis_client.keys("govsms:smpp:*") == []
    # What is kept: the masked number and its digest, so counts per sender still work.
    senders = conn.execute("SELECT sender, count(*), count(DISTINCT sender_digest) FROM inbound "
                           "GROUP BY sender ORDER BY sender").fetchall()
    assert senders == [("+7701***0001", 2, 1), ("+7701***0002", 2, 1), ("BEELINE", 1, 1)]
    assert conn.execute("SELECT count(*) FROM inbound WHERE purged_at IS NULL OR text <> ''"
                        ).fetchone() == (0,)


def test_a_purged_message_shows_as_purged_and_is_never_sent_again(conn, database_url, redis_client,
                                                                   env):
    every_kind(conn, database_url, redis_client)
    assert CliRunner().invoke(main, ["purge", "--older-than", "0s"]).exit_code == 0
    [letter] = messages.dead_letters(conn, include_replayed=False)
    assert messages.describe(conn, "inbound", letter.inbound_id)["text"] == "(purged)"
    assert messages.replay_dead_letter(conn, letter) is None
    assert conn.execute("SELECT count(*) FROM inbound WHERE source = 'replay'").fetchone() == (0,)
    assert list(messages.received_between(conn, dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
                                          dt.datetime.now(dt.UTC))) == []


def test_a_dry_run_counts_and_changes_nothing(conn, database_url, redis_client, env):
    every_kind(conn, database_url, redis_client)
    text = dump(database_url)
    result = CliRunner().invoke(main, ["purge", "--older-than", "0s", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "5 inbound messages and 4 SMS to purge, 0 still in flight" in result.output
    assert dump(database_url) == text


def test_only_what_is_older_than_the_limit_and_finished_is_purged(conn, database_url):
    old = receive(conn, "hello", external_id="old")
    waiting = receive(conn, "hello", external_id="waiting")
    young = receive(conn, "hello", external_id="young")
    conn.execute("UPDATE inbound SET state = 'answered' WHERE id IN (%s, %s)", (old, young))
    conn.execute("UPDATE inbound SET received_at = now() - interval '40 days' WHERE id <> %s",
                 (young,))
    with psycopg.connect(database_url, autocommit=True) as c:
        done = retention.purge(c, b"k" * 32, dt.datetime.now(dt.UTC) - dt.timedelta(days=30),
                               batch=1)
    assert (done.inbound, done.in_flight) == (1, 1)
    rows = conn.execute("SELECT id, purged_at IS NOT NULL, text FROM inbound ORDER BY id")
    assert [r[1:] for r in rows] == [(True, ""), (False, "hello"), (False, "hello")]
    assert waiting


def test_beat_purges_nightly_unless_kept_for_ever():
    assert _schedule(Settings(retention_days=90), [])["purge"]["task"] == "govsms.purge"
    assert "purge" not in _schedule(Settings(retention_days=0), [])


def test_the_age_takes_a_unit():
    from workers.cli.common import age

    assert age("30d") == dt.timedelta(days=30) and age("0s") == dt.timedelta(0)
    assert CliRunner().invoke(main, ["purge", "--older-than", "30 days"]).exit_code == 2


def test_the_nightly_task_purges_past_the_retention_days(conn, database_url, redis_client, env,
                                                          monkeypatch):
    from workers.app import create_app

    old, young = (receive(conn, "hello", external_id=key) for key in ("old", "young"))
    conn.execute("UPDATE inbound SET state = 'answered'")
    conn.execute("UPDATE inbound SET received_at = now() - interval '3 days' WHERE id = %s",
                 (old,))
    monkeypatch.setenv("GOVSMS_RETENTION_DAYS", "2")
    app = create_app(Settings())
    try:
        app.tasks["govsms.purge"].apply()
    finally:
        app.govsms.pipeline.pool.close()
    rows = conn.execute("SELECT id, purged_at IS NOT NULL FROM inbound ORDER BY id").fetchall()
    assert rows == [(old, True), (young, False)]
