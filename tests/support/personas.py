"""Citizens in the stores: the demo personas, one persona of a test, and their exact replies."""

from __future__ import annotations

import datetime as dt
import json

import psycopg

from services import tech_inspection
from workers import extracts
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
    """The demo personas, loaded through the extract loader as an extract would be."""
    text = json.dumps(demo.dataset(persons=0, today=TODAY), default=str)
    extracts.load(conn, extracts.validate(text))


def add_persona(conn: psycopg.Connection, *, phone: str, iin: str, status: str = "valid",
                housing: int | None = None) -> None:
    """A citizen in MBG and the register of individuals, optionally in the housing queue."""
    conn.execute("INSERT INTO mbg.subscribers (phone, iin) VALUES (%s, %s)", (phone, iin))
    conn.execute("INSERT INTO persons.individuals VALUES (%s, 'Test Person', '1988-01-02', %s) "
                 "ON CONFLICT DO NOTHING", (iin, status))
    if housing is not None:
        conn.execute("INSERT INTO housing.queue VALUES (%s, %s, 'general', '2019-03-12', "
                     "'Akimat of Astana')", (iin, housing))
