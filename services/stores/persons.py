"""The state register of individuals: a person's status by IIN."""

from __future__ import annotations

import psycopg

_STATUS_BY_IIN = "SELECT status FROM persons.individuals WHERE iin = %s"


def is_valid(conn: psycopg.Connection, iin: str) -> bool:
    """True when `iin` is in the register with status valid."""
    row = conn.execute(_STATUS_BY_IIN, (iin,)).fetchone()
    return row is not None and row[0] == "valid"


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO persons.individuals (iin, full_name, birth_date, status)
VALUES (%(iin)s, %(full_name)s, %(birth_date)s, %(status)s)
ON CONFLICT (iin) DO UPDATE SET full_name = EXCLUDED.full_name,
    birth_date = EXCLUDED.birth_date, status = EXCLUDED.status
"""

