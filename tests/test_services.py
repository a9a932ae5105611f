"""The three 1414 services on the real backing stores: every row of seed tables 1-3.

The demo personas (workers/local/demo.py) are loaded through the extract loader, and
each example text goes through dispatch and the service's handler as a worker
would run them, without Celery.
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from parsers import Command
from services import tech_inspection
from services.handler import Request
from tests.test_pipeline import make_pipeline
from workers import extracts, messages, pipeline
from workers.local import demo

# The service's own clock: the day in Kazakhstan, where the date changes at 19:00 UTC.
TODAY = dt.datetime.now(tech_inspection.KAZAKHSTAN).date()
SEED = {
    "common.service_not_found": "Servis ne naiden. Isprav'te vash tekst.",
    "tech_inspection.not_in_mbg": "Vi ne mozhete poluchit spravku, Vas net v mobilnoi baze "
                                  "grazhdan. Registraciju mozhno proiti na egov.kz I v Tsone.",
    "tech_inspection.status_invalid": "Usluga ne mozhet byt' okazana. Vash status v "
                                      "gosudarstvennoy baze dannyh fizicheskikh lic ne validen.",
    "tech_inspection.no_data": "Usluga ne mozhet byt' okazana. Po Vashemu zaprosu danyye ne "
                               "naideny, prover'te vvedennyye danyye.",
    "kindergarten_queue.not_in_mbg": "Vi ne mozhete poluchit spravku, Vas net v mobilnoi baze "
                                     "grazhdan. Registraciju mozhno proiti na egov.kz i v Tsone.",
    "kindergarten_queue.status_invalid": "Usluga ne mozhet byt' okazana. Vash sotsialny status "
                                         "ne pozvolyaet poluchit uslugu, obratites v organi "
                                         "yustitsii.",
    "kindergarten_queue.child_iin_missing": "IIN rebenka ne ukazan",
    "kindergarten_queue.child_iin_invalid": "Usluga ne mozhet byt' okazana. Sotsialny status "
                                            "reneka ne pozvolyaet poluchit uslugu, obratites v "
                                            "organi yustitsii.",
    "kindergarten_queue.no_data": "Usluga ne mozhet byt' okazana. Dannye o IIN rebenka ne naiden.",
    "housing_queue.not_in_mbg": "Vi ne mozhete poluchit spravku, Vas net v mobilnoi baze "
                                "grazhdan. Registraciu mozjno proiti na egov.kz I v Tsone.",
    "housing_queue.status_invalid": "Usluga ne mozhet byt' okazana. Vash status v gosudarstvennoy "
                                    "baze dannyh fizicheskikh lic ne validen.",
    "housing_queue.no_data": "Usluga ne mozhet byt' okazana. Po Vashemu zaprosu dannye ne naideny, "
                             "prover'te vvedennye dannye.",
}


def _d(value: dt.date) -> str:
    return value.strftime("%d.%m.%Y")


def expected_text(text: str, outcome: str) -> str:
    """The exact reply an example must get (`text` tells whose housing place it is)."""
    if outcome in SEED:
        return SEED[outcome]
    data = demo.dataset(persons=0, today=TODAY)
    if outcome == "tech_inspection.valid":
        car = data["vehicle_inspections"][0]
        return f"Tehosmotr 123***01 deistvitelen s {_d(car['valid_from'])} po {_d(car['valid_to'])}."
    if outcome == "tech_inspection.expired":
        return f"Tehosmotr 777***02 ne deistvitelen: srok istek {_d(data['vehicle_inspections'][1]['valid_to'])}."
    if outcome == "kindergarten_queue.found":
        return ("Ochered' v detsad: rebenok IIN 2106***3018, nomer v ocheredi 17, "
                "zayavlenie ot 20.05.2024.")
    if outcome == "housing_queue.found" and demo.OTHER_IN_HOUSING not in text:
        return ("Ochered' na zhil'e: IIN 8801***0459, nomer v ocheredi 1234, "
                "data postanovki 12.03.2019.")
    if outcome == "housing_queue.found":
        return ("Ochered' na zhil'e: IIN 7503***3040, nomer v ocheredi 56, "
                "data postanovki 01.09.2015.")
    raise AssertionError(f"no expectation for {outcome}")


def load_personas(conn: psycopg.Connection) -> None:
    text = json.dumps(demo.dataset(persons=0, today=TODAY), default=str)
    extracts.load(conn, extracts.validate(text))


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
