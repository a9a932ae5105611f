"""Vehicle inspections: how long a vehicle's technical inspection is valid."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class Inspection:
    """A vehicle's current technical inspection."""

    plate: str
    valid_from: dt.date
    valid_to: dt.date
    vehicle: str


_BY_PLATE = """
SELECT plate, valid_from, valid_to, vehicle FROM vehicles.inspections WHERE plate = ANY(%s)
"""


def inspections_by_plate(conn: psycopg.Connection,
                         plates: Sequence[str]) -> dict[str, Inspection]:
    """The inspections of the vehicles with `plates` (normalised) found, by plate: one query."""
    if not plates:
        return {}
    with conn.cursor(row_factory=class_row(Inspection)) as cur:
        return {i.plate: i for i in cur.execute(_BY_PLATE, (list(plates),))}


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO vehicles.inspections (plate, valid_from, valid_to, vehicle)
VALUES (%(plate)s, %(valid_from)s, %(valid_to)s, %(vehicle)s)
ON CONFLICT (plate) DO UPDATE SET valid_from = EXCLUDED.valid_from,
    valid_to = EXCLUDED.valid_to, vehicle = EXCLUDED.vehicle
"""

