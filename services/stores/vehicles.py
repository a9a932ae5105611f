"""Vehicle inspections: how long a vehicle's technical inspection is valid."""

from __future__ import annotations

import datetime as dt
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


_BY_PLATE = "SELECT plate, valid_from, valid_to, vehicle FROM vehicles.inspections WHERE plate = %s"


def inspection_by_plate(conn: psycopg.Connection, plate: str) -> Inspection | None:
    """The inspection of the vehicle with `plate` (normalised, e.g. `123ABC01`), if any."""
    with conn.cursor(row_factory=class_row(Inspection)) as cur:
        return cur.execute(_BY_PLATE, (plate,)).fetchone()


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO vehicles.inspections (plate, valid_from, valid_to, vehicle)
VALUES (%(plate)s, %(valid_from)s, %(valid_to)s, %(vehicle)s)
ON CONFLICT (plate) DO UPDATE SET valid_from = EXCLUDED.valid_from,
    valid_to = EXCLUDED.valid_to, vehicle = EXCLUDED.vehicle
"""

