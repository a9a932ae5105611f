"""The state register of individuals: a person's status by IIN."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

_VALID = "SELECT iin FROM persons.individuals WHERE iin = ANY(%s) AND status = 'valid'"


def valid_iins(conn: psycopg.Connection, iins: Iterable[str]) -> set[str]:
    """Those of `iins` in the register with status valid: one query."""
    wanted = list(iins)
    return {row[0] for row in conn.execute(_VALID, (wanted,))} if wanted else set()


# Loading an extract: insert or update, keyed like the look-up.
UPSERT = """
INSERT INTO persons.individuals (iin, full_name, birth_date, status)
VALUES (%(iin)s, %(full_name)s, %(birth_date)s, %(status)s)
ON CONFLICT (iin) DO UPDATE SET full_name = EXCLUDED.full_name,
    birth_date = EXCLUDED.birth_date, status = EXCLUDED.status
"""

