"""`govsms db seed-demo`: a synthetic, realistic dataset with documented personas.

Nothing here is a real person's data: names are drawn from lists of common
given names and surnames, IINs are computed (valid check digits), phone numbers
and plates are random. The same seed gives the same data; loading twice is an
upsert. The personas exercise every row of the seed tables (README, "Demo").
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from parsers.iin import check_digit
from services.registry import default_registry

GIVEN = ("Aigerim", "Aidos", "Almas", "Asel", "Aruzhan", "Bauyrzhan", "Dana", "Daniyar", "Dias",
         "Gulnara", "Ilyas", "Kairat", "Madina", "Marat", "Nurlan", "Saule", "Timur", "Zhanna")
FAMILY = ("Abenov", "Akhmetov", "Baimukhanov", "Dzhaksybekov", "Ermekov", "Iskakov", "Kenzhebekov",
          "Mukanov", "Nurpeisov", "Omarov", "Sadykov", "Serikbayev", "Tokayev", "Zhunusov")
VEHICLES = ("Toyota Camry", "Hyundai Accent", "Lada Granta", "Kia Rio", "Chevrolet Cobalt",
            "Volkswagen Polo", "Toyota Land Cruiser", "Hyundai Tucson", "Skoda Octavia")
AUTHORITIES = ("Akimat of Astana", "Akimat of Almaty", "Akimat of Shymkent", "Akimat of Karaganda")
CATEGORIES = ("large family", "disabled person", "civil servant", "orphan", "general")
KINDERGARTENS = ("Balapan No 12", "Aigolek No 3", "Baldauren No 45", "Kunshuak No 7")
PLATE_LETTERS = "ABCDEFGHIKLMNOPRSTUVXYZ"


def make_iin(born: dt.date, female: bool, serial: int) -> str:
    """A valid IIN for a birth date, sex and serial (the serial moves on if no check digit fits)."""
    century = {18: 1, 19: 3, 20: 5}[born.year // 100] + int(female)
    while True:
        first11 = f"{born:%y%m%d}{century}{serial % 10000:04d}"
        digit = check_digit(first11)
        if digit is not None:
            return first11 + str(digit)
        serial += 1


@dataclass(frozen=True, slots=True)
class Persona:
    """A documented demo citizen."""

    name: str
    phone: str
    iin: str
    role: str


AIGERIM = Persona("Aigerim Sadykova", "+77010000001", make_iin(dt.date(1988, 1, 2), True, 45),
                  "in MBG, valid; a car with a valid and one with an expired inspection; "
                  "a child in the kindergarten queue; herself in the housing queue")
NURLAN = Persona("Nurlan Omarov", "+77010000002", make_iin(dt.date(1990, 5, 17), False, 12),
                 "not in MBG")
DANIYAR = Persona("Daniyar Iskakov", "+77010000003", make_iin(dt.date(1979, 11, 30), False, 7),
                  "in MBG, status invalid")
PERSONAS = (AIGERIM, NURLAN, DANIYAR)

CHILD_IN_QUEUE = make_iin(dt.date(2021, 6, 1), False, 301)
CHILD_NOT_IN_QUEUE = make_iin(dt.date(2022, 2, 14), True, 302)
CHILD_INVALID = make_iin(dt.date(2020, 9, 9), True, 303)
OTHER_IN_HOUSING = make_iin(dt.date(1975, 3, 8), True, 304)
PLATE_VALID, PLATE_EXPIRED, PLATE_UNKNOWN = "123ABC01", "777AAA02", "999ZZZ99"

# (sender, text, outcome): what each persona may send and which table row answers.
EXAMPLES: tuple[tuple[Persona, str, str], ...] = (
    (AIGERIM, "hello", "common.service_not_found"),
    (AIGERIM, "Техосмотр 123 ABC 01", "tech_inspection.valid"),
    (AIGERIM, "8 777AAA02", "tech_inspection.expired"),
    (AIGERIM, "Techosmotr999ZZZ99", "tech_inspection.no_data"),
    (NURLAN, "Tehnikalyk baikau 123ABC01", "tech_inspection.not_in_mbg"),
    (DANIYAR, "Техникалық байқау 123ABC01", "tech_inspection.status_invalid"),
    (AIGERIM, f"Очередь в детсад {CHILD_IN_QUEUE}", "kindergarten_queue.found"),
    (AIGERIM, "5", "kindergarten_queue.child_iin_missing"),
    (AIGERIM, f"5 {CHILD_INVALID}", "kindergarten_queue.child_iin_invalid"),
    (AIGERIM, f"Bala-bakshaga kezek {CHILD_NOT_IN_QUEUE}", "kindergarten_queue.no_data"),
    (NURLAN, f"Ochered' v detsad {CHILD_IN_QUEUE}", "kindergarten_queue.not_in_mbg"),
    (DANIYAR, f"Бала-бақшаға кезек {CHILD_IN_QUEUE}", "kindergarten_queue.status_invalid"),
    (AIGERIM, "4", "housing_queue.found"),
    (AIGERIM, f"Turgyn uige kezek {OTHER_IN_HOUSING}", "housing_queue.found"),
    (AIGERIM, f"Очередь на жилье {CHILD_NOT_IN_QUEUE}", "housing_queue.no_data"),
    (NURLAN, "Ochered' na zhil'e", "housing_queue.not_in_mbg"),
    (DANIYAR, "Тұрғын үйге кезек", "housing_queue.status_invalid"),
)


def _person(iin: str, name: str, born: dt.date, status: str = "valid") -> dict[str, Any]:
    return {"iin": iin, "full_name": name, "birth_date": born, "status": status}


def _personas(today: dt.date) -> dict[str, list[dict[str, Any]]]:
    year = dt.timedelta(days=365)
    return {
        "mbg": [{"phone": p.phone, "iin": p.iin} for p in (AIGERIM, DANIYAR)],
        "persons": [
            _person(AIGERIM.iin, AIGERIM.name, dt.date(1988, 1, 2)),
            _person(DANIYAR.iin, DANIYAR.name, dt.date(1979, 11, 30), "invalid"),
            _person(CHILD_IN_QUEUE, "Alikhan Sadykov", dt.date(2021, 6, 1)),
            _person(CHILD_NOT_IN_QUEUE, "Amina Sadykova", dt.date(2022, 2, 14)),
            _person(CHILD_INVALID, "Dana Mukanova", dt.date(2020, 9, 9), "invalid"),
            _person(OTHER_IN_HOUSING, "Gulnara Ermekova", dt.date(1975, 3, 8)),
        ],
        "vehicle_inspections": [
            {"plate": PLATE_VALID, "valid_from": today - year / 2, "valid_to": today + year / 2,
             "vehicle": "Toyota Camry"},
            {"plate": PLATE_EXPIRED, "valid_from": today - 2 * year, "valid_to": today - year,
             "vehicle": "Lada Granta"},
        ],
        "kindergarten_queue": [{"child_iin": CHILD_IN_QUEUE, "position": 17,
                                "kindergarten": "Balapan No 12", "applied_on": dt.date(2024, 5, 20)}],
        "housing_queue": [
            {"iin": AIGERIM.iin, "position": 1234, "category": "large family",
             "registered_on": dt.date(2019, 3, 12), "authority": "Akimat of Astana"},
            {"iin": OTHER_IN_HOUSING, "position": 56, "category": "disabled person",
             "registered_on": dt.date(2015, 9, 1), "authority": "Akimat of Almaty"},
        ],
    }


def dataset(persons: int = 20_000, seed: int = 1414,
            today: dt.date | None = None) -> dict[str, list[dict[str, Any]]]:
    """The personas plus `persons` synthetic people, their phones, cars and queue places."""
    today = today or dt.date.today()
    rng = random.Random(seed)
    data = _personas(today)
    taken_phones = {p.phone for p in PERSONAS}
    taken_iins = {row["iin"] for row in data["persons"]} | {p.iin for p in PERSONAS}
    taken_plates = {PLATE_VALID, PLATE_EXPIRED, PLATE_UNKNOWN}
    for n in range(persons):
        female = rng.random() < 0.5
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 70))
        iin = make_iin(born, female, rng.randrange(10000))
        if iin in taken_iins:
            continue
        taken_iins.add(iin)
        family = rng.choice(FAMILY) + ("a" if female else "")
        name = f"{rng.choice(GIVEN)} {family}"
        data["persons"].append(_person(iin, name, born, "valid" if rng.random() < 0.97 else "invalid"))
        if rng.random() < 0.85:
            phone = f"+77{rng.choice((0, 0, 0, 4, 7))}{rng.randrange(10):d}{rng.randrange(10**7):07d}"
            if phone not in taken_phones:
                taken_phones.add(phone)
                data["mbg"].append({"phone": phone, "iin": iin})
        if rng.random() < 0.6:
            plate = _plate(rng)
            if plate not in taken_plates:
                taken_plates.add(plate)
                start = today - dt.timedelta(days=rng.randrange(730))
                data["vehicle_inspections"].append({
                    "plate": plate, "valid_from": start, "valid_to": start + dt.timedelta(days=365),
                    "vehicle": rng.choice(VEHICLES)})
        if n % 4 == 0:
            data["housing_queue"].append({
                "iin": iin, "position": rng.randrange(1, 50_000), "category": rng.choice(CATEGORIES),
                "registered_on": today - dt.timedelta(days=rng.randrange(1, 5000)),
                "authority": rng.choice(AUTHORITIES)})
        if n % 4 == 1:
            child_born = today - dt.timedelta(days=rng.randrange(365, 6 * 365))
            child = make_iin(child_born, rng.random() < 0.5, rng.randrange(10000))
            if child not in taken_iins:
                taken_iins.add(child)
                data["persons"].append(_person(child, f"{rng.choice(GIVEN)} {family}", child_born))
                data["kindergarten_queue"].append({
                    "child_iin": child, "position": rng.randrange(1, 3000),
                    "kindergarten": rng.choice(KINDERGARTENS),
                    "applied_on": child_born + dt.timedelta(days=rng.randrange(30, 365))})
    return data


def _plate(rng: random.Random) -> str:
    letters = "".join(rng.choice(PLATE_LETTERS) for _ in range(3))
    if rng.random() < 0.8:
        return f"{rng.randrange(1000):03d}{letters}{rng.randrange(1, 21):02d}"
    return f"{rng.choice(PLATE_LETTERS)}{rng.randrange(1000):03d}{letters}"


# Every row of seed tables 1-3 as (sender, argument, outcome), sent after each keyword.
ROWS = {
    "tech_inspection": [
        (AIGERIM, "123 ABC 01", "tech_inspection.valid"),
        (AIGERIM, "777AAA02", "tech_inspection.expired"),
        (NURLAN, "123ABC01", "tech_inspection.not_in_mbg"),
        (DANIYAR, "123ABC01", "tech_inspection.status_invalid"),
        (AIGERIM, "999ZZZ99", "tech_inspection.no_data"),
        (AIGERIM, "", "tech_inspection.no_data"),
        (AIGERIM, "12AB", "tech_inspection.no_data"),
    ],
    "kindergarten_queue": [
        (AIGERIM, CHILD_IN_QUEUE, "kindergarten_queue.found"),
        (NURLAN, CHILD_IN_QUEUE, "kindergarten_queue.not_in_mbg"),
        (DANIYAR, CHILD_IN_QUEUE, "kindergarten_queue.status_invalid"),
        (AIGERIM, "", "kindergarten_queue.child_iin_missing"),
        (AIGERIM, CHILD_INVALID, "kindergarten_queue.child_iin_invalid"),
        (AIGERIM, CHILD_IN_QUEUE[:11] + "0", "kindergarten_queue.child_iin_invalid"),
        (AIGERIM, CHILD_NOT_IN_QUEUE, "kindergarten_queue.no_data"),
    ],
    "housing_queue": [
        (AIGERIM, "", "housing_queue.found"),
        (AIGERIM, OTHER_IN_HOUSING, "housing_queue.found"),
        (NURLAN, "", "housing_queue.not_in_mbg"),
        (DANIYAR, OTHER_IN_HOUSING, "housing_queue.status_invalid"),
        (AIGERIM, CHILD_NOT_IN_QUEUE, "housing_queue.no_data"),
        (AIGERIM, "12345", "housing_queue.no_data"),
    ],
}


def every_row_in_every_keyword() -> list[tuple[Persona, str, str]]:
    """Each row of ROWS after each keyword of its service, in every language."""
    registry = default_registry()
    return [(persona, f"{keyword} {argument}".strip(), outcome)
            for service, rows in ROWS.items()
            for keyword in registry[service].syntax.keywords
            for persona, argument, outcome in rows]
