"""`govsms db load`: registry extracts (JSON) validated row by row, then upserted all or nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import psycopg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from parsers.iin import is_valid_iin
from parsers.plate import normalise_plate
from services.phones import to_e164
from services.stores import housing, kindergarten, mbg, persons, vehicles


class ExtractError(ValueError):
    """A malformed extract; names the line and the reason."""


def _iin(value: str) -> str:
    if not is_valid_iin(value):
        raise ValueError("not a valid IIN")
    return value


def _phone(value: str) -> str:
    e164 = to_e164(value, "KZ")
    if e164 is None:
        raise ValueError("not a phone number")
    return e164


def _plate(value: str) -> str:
    plate = normalise_plate(value)
    if plate is None:
        raise ValueError("not a plate of mask 000AAA00 or A000AAA")
    return plate


Iin = Annotated[str, AfterValidator(_iin)]
Text = Annotated[str, Field(min_length=1, max_length=500)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MbgRow(_Row):
    phone: Annotated[str, AfterValidator(_phone)]
    iin: Iin


class PersonRow(_Row):
    iin: Iin
    full_name: Text
    birth_date: dt.date
    status: Literal["valid", "invalid"]


class InspectionRow(_Row):
    plate: Annotated[str, AfterValidator(_plate)]
    valid_from: dt.date
    valid_to: dt.date
    vehicle: Text

    @model_validator(mode="after")
    def _ordered(self) -> InspectionRow:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class KindergartenRow(_Row):
    child_iin: Iin
    position: Annotated[int, Field(gt=0)]
    kindergarten: Text
    applied_on: dt.date


class HousingRow(_Row):
    iin: Iin
    position: Annotated[int, Field(gt=0)]
    category: Text
    registered_on: dt.date
    authority: Text


# Extract key -> (row model, the store's upsert SQL), in load order.
SECTIONS: dict[str, tuple[type[_Row], str]] = {
    "mbg": (MbgRow, mbg.UPSERT),
    "persons": (PersonRow, persons.UPSERT),
    "vehicle_inspections": (InspectionRow, vehicles.UPSERT),
    "kindergarten_queue": (KindergartenRow, kindergarten.UPSERT),
    "housing_queue": (HousingRow, housing.UPSERT),
}


def _rows(text: str) -> Iterator[tuple[str, int, Any]]:
    """(section, line, row) for every row of every section, with the line the row starts on."""
    decoder = json.JSONDecoder()

    def skip(pos: int, *tokens: str) -> tuple[int, str]:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text) or text[pos] not in tokens:
            raise ExtractError(f"line {text.count(chr(10), 0, pos) + 1}: expected "
                               f"{' or '.join(tokens)}")
        return pos + 1, text[pos]

    def decode(pos: int) -> tuple[Any, int]:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        try:
            return decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise ExtractError(f"line {error.lineno}: {error.msg}") from None

    counted_to, line = 0, 1

    def line_at(pos: int) -> int:
        nonlocal counted_to, line
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        return line

    pos, _ = skip(0, "{")
    pos, token = skip(pos, '"', "}")
    while token != "}":
        key, pos = decode(pos - 1)
        if key not in SECTIONS:
            raise ExtractError(f"line {text.count(chr(10), 0, pos) + 1}: unknown section {key!r}; "
                               f"expected {', '.join(SECTIONS)}")
        pos, _ = skip(pos, ":")
        pos, token = skip(pos, "[")
        pos, token = skip(pos, "{", "]")
        while token != "]":
            start = line_at(pos - 1)
            row, pos = decode(pos - 1)
            yield key, start, row
            pos, token = skip(pos, ",", "]")
            if token == ",":
                pos, token = skip(pos, "{")
        pos, token = skip(pos, ",", "}")
        if token == ",":
            pos, token = skip(pos, '"')


def validate(text: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the extract validated; the first bad row raises ExtractError with its line."""
    valid: dict[str, list[dict[str, Any]]] = {key: [] for key in SECTIONS}
    for key, line, row in _rows(text):
        model = SECTIONS[key][0]
        try:
            valid[key].append(model.model_validate(row).model_dump())
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "row"
            raise ExtractError(f"line {line}: {key}: {field}: {first['msg']}") from None
    return valid


def load(conn: psycopg.Connection, sections: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Upsert validated rows in one transaction; the number of rows per section."""
    with conn.transaction(), conn.cursor() as cur:
        for key, (_, upsert) in SECTIONS.items():
            if sections.get(key):
                cur.executemany(upsert, sections[key])
    return {key: len(rows) for key, rows in sections.items() if rows}
