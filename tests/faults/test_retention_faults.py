"""A purge of 100,000 old messages while the pipeline answers: it keeps its rate."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time

import psycopg
import pytest

from tests.support.gateway import wait_for
from tests.support.keys import KEY
from tests.support.load import Posted, ids, post
from workers import retention

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

OLD = 100_000
RATE, SECONDS = 100, 8

_SEED = """
WITH old AS (
    INSERT INTO inbound (source, external_id, sender, shortcode, text, received_at, state, service)
    SELECT 'old', 'old-' || n, '+7701' || lpad(n::text, 7, '0'), '1414', '4 880102300452',
           now() - interval '40 days', 'answered', 'housing_queue'
    FROM generate_series(1, %s) AS n
    RETURNING id, sender, received_at)
INSERT INTO outbound (inbound_id, sender, recipient, text, service, outcome, state, deadline,
                      created_at, sent_at, attempts)
SELECT id, '1414', sender, 'Ochered'' na zhil''e: IIN 8801***0452, nomer v ocheredi 7.',
       'housing_queue', 'found', 'sent', received_at + interval '60 s', received_at,
       received_at + interval '1 s', 1 FROM old
"""


def latencies(conn: psycopg.Connection, prefix: str) -> list[float]:
    return [float(r[0]) for r in conn.execute(
        "SELECT extract(epoch FROM o.sent_at - i.received_at) FROM inbound i JOIN outbound o "
        "ON o.inbound_id = i.id WHERE i.external_id LIKE %s AND o.state = 'sent'",
        (prefix + "-%",))]


def load(gw, conn, prefix: str) -> dict:
    """RATE messages a second for SECONDS, every one answered: the figures."""
    messages, posted = ids(prefix, RATE * SECONDS), Posted()
    started = time.monotonic()
    post(gw, messages, posted, rate=RATE)
    wait_for(lambda: len(latencies(conn, prefix)) >= len(messages), 60, f"{prefix} answered")
    spent = time.monotonic() - started
    waits = sorted(latencies(conn, prefix))
    return {"answered": len(waits), "refused": len(posted.refused),
            "replies_per_s": round(len(waits) / spent, 1),
            "p50_s": round(statistics.median(waits), 3),
            "p99_s": round(waits[int(0.99 * (len(waits) - 1))], 3)}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_pipeline_keeps_its_rate_during_a_purge_of_100000_messages(
        redis_url, gateway_on, conn, database_url):
    conn.execute(_SEED, (OLD,))
    gw = gateway_on(redis_url)
    usual = load(gw, conn, "usual")
    purged: dict = {}

    def purge() -> None:
        started = time.monotonic()
        with psycopg.connect(database_url, autocommit=True) as c:
            done = retention.purge(c, retention.digest_key(KEY),
                                   dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        purged.update(inbound=done.inbound, outbound=done.outbound,
                      seconds=round(time.monotonic() - started, 1))

    purging = threading.Thread(target=purge)
    purging.start()
    during = load(gw, conn, "during")
    purging.join(300)
    print(f"\n[fault] purge of {OLD:,} old messages under load: "
          + json.dumps({"usual": usual, "during_purge": during, "purge": purged}))
    assert purged["inbound"] == purged["outbound"] == OLD
    assert usual["refused"] == during["refused"] == 0
    assert during["replies_per_s"] >= 0.9 * usual["replies_per_s"]
    assert during["p99_s"] < 5.0
    left, = conn.execute(
        "SELECT count(*) FROM inbound WHERE source = 'old' AND "
        "(purged_at IS NULL OR sender NOT LIKE '+7701***____' OR text <> '')").fetchone()
    assert left == 0
