"""The three 1414 services on the real backing stores: every row of seed tables 1-3.

The demo personas (workers/local/demo.py) are loaded through the extract loader, and
each example text goes through dispatch and the service's handler as a worker
would run them, without Celery.
"""

from __future__ import annotations

import datetime as dt

import pytest

from parsers import Command
from services import tech_inspection
from services.handler import Request
from tests.support.personas import SEED, TODAY, expected_text, load_personas
from tests.support.pipeline import make_pipeline
from workers import messages, pipeline
from workers.local import demo


@pytest.fixture
def p(conn, database_url):
    load_personas(conn)
    built = make_pipeline(database_url)
    yield built
    built.pool.close()


@pytest.mark.parametrize(("persona", "text", "outcome"), demo.EXAMPLES,
                         ids=[f"{o}:{t}" for _, t, o in demo.EXAMPLES])
def test_every_row_of_the_seed_tables(conn, p, persona, text, outcome):
    inbound_id = messages.record_inbound(conn, source="t", external_id="1", sender=persona.phone,
                                         shortcode="1414", text=text).id
    routed = pipeline.dispatch(p, [inbound_id])
    for service, ids in routed.services.items():
        pipeline.answer(p, service, ids)
    row = conn.execute("SELECT service, outcome, text FROM outbound").fetchone()
    service, expected_outcome = outcome.split(".")
    assert row == (None if service == "common" else service, expected_outcome,
                   expected_text(text, outcome))


def test_every_row_of_the_seed_tables_in_one_batch(conn, p):
    # The services look up a batch's senders, plates and IINs together: each reply must
    # still be its own message's, whatever the others in the batch are.
    ids = {messages.record_inbound(conn, source="t", external_id=str(n), sender=persona.phone,
                                   shortcode="1414", text=text).id: (text, outcome)
           for n, (persona, text, outcome) in enumerate(demo.EXAMPLES)}
    routed = pipeline.dispatch(p, list(ids))
    assert max(len(batch) for batch in routed.services.values()) > 3
    for service, batch in routed.services.items():
        pipeline.answer(p, service, batch)
    rows = conn.execute("SELECT inbound_id, service, outcome, text FROM outbound").fetchall()
    assert len(rows) == len(ids)
    for inbound_id, service, outcome, text in rows:
        sent, expected = ids[inbound_id]
        name, expected_outcome = expected.split(".")
        assert (service, outcome, text) == (None if name == "common" else name,
                                            expected_outcome, expected_text(sent, expected))


def test_a_seed_text_never_drifts(conn, p):
    rendered = {f"{s}.{o}": t for s, o, t in p.templates}
    assert {k: rendered[k] for k in SEED} == SEED


def test_an_inspection_is_valid_through_its_last_day(conn, p):
    conn.execute("UPDATE vehicles.inspections SET valid_to = %s WHERE plate = '123ABC01'",
                 (TODAY,))
    inbound_id = messages.record_inbound(conn, source="t", external_id="1",
                                         sender=demo.AIGERIM.phone, shortcode="1414",
                                         text="8 123ABC01").id
    pipeline.answer(p, "tech_inspection", [inbound_id])
    outcome, = conn.execute("SELECT outcome FROM outbound").fetchone()
    assert outcome == "valid"


@pytest.mark.parametrize(("received_utc", "outcome"), [
    ("2026-03-10T18:59:59+00:00", "valid"),     # 23:59:59 in Astana: the last day
    ("2026-03-10T19:00:00+00:00", "expired"),   # midnight in Astana, still the 10th in UTC
    ("2026-03-09T20:00:00+00:00", "valid"),
])
def test_the_last_day_is_counted_in_kazakhstan_time(conn, received_utc, outcome):
    load_personas(conn)
    conn.execute("UPDATE vehicles.inspections SET valid_from = '2025-03-11', "
                 "valid_to = '2026-03-10' WHERE plate = '123ABC01'")
    request = Request(demo.AIGERIM.phone, Command("tech_inspection", {"plate": "123ABC01"}),
                      dt.datetime.fromisoformat(received_utc))
    assert tech_inspection.handle(conn, request).outcome == outcome


def test_a_child_missing_from_the_register_is_not_valid(conn, p):
    conn.execute("DELETE FROM persons.individuals WHERE iin = %s", (demo.CHILD_NOT_IN_QUEUE,))
    inbound_id = messages.record_inbound(conn, source="t", external_id="1",
                                         sender=demo.AIGERIM.phone, shortcode="1414",
                                         text=f"5 {demo.CHILD_NOT_IN_QUEUE}").id
    pipeline.answer(p, "kindergarten_queue", [inbound_id])
    assert conn.execute("SELECT outcome FROM outbound").fetchone() == ("child_iin_invalid",)
