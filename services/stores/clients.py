"""What the client API keeps per client: its daily usage and its idempotency keys."""

from __future__ import annotations

import datetime as dt

import psycopg

# The row stays locked until the transaction ends: a client's sends take turns on it, so
# two requests at once cannot both pass the quota.
_CHARGE = """
INSERT INTO api.usage AS u (client, day, messages, parts) VALUES (%s, %s, 1, %s)
ON CONFLICT (client, day) DO UPDATE SET messages = u.messages + 1, parts = u.parts + EXCLUDED.parts
RETURNING messages, parts
"""


def charge(conn: psycopg.Connection, client: str, day: dt.date, parts: int) -> tuple[int, int]:
    """Count one message of `parts` parts to `client` on `day`: the day's (messages, parts)."""
    row = conn.execute(_CHARGE, (client, day, parts)).fetchone()
    assert row is not None
    return row[0], row[1]


# A second request with the key waits here for the first one's transaction to end.
_CLAIM_KEY = """
INSERT INTO api.idempotency (client, key, body_digest, created_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (client, key) DO NOTHING
"""
_KEY_DIGEST = "SELECT body_digest FROM api.idempotency WHERE client = %s AND key = %s"


def claim_key(conn: psycopg.Connection, client: str, key: str, body_digest: str,
              now: dt.datetime) -> str | None:
    """Bind `key` to `body_digest`; None when it is new, else the digest it was bound to."""
    if conn.execute(_CLAIM_KEY, (client, key, body_digest, now)).rowcount:
        return None
    row = conn.execute(_KEY_DIGEST, (client, key)).fetchone()
    assert row is not None
    return row[0]


_USAGE = """
SELECT client, coalesce(sum(messages) FILTER (WHERE day = %(today)s), 0),
       coalesce(sum(parts) FILTER (WHERE day = %(today)s), 0),
       coalesce(sum(parts) FILTER (WHERE day < %(today)s), 0)
FROM api.usage WHERE day >= %(since)s AND day <= %(today)s GROUP BY client
"""


def usage(conn: psycopg.Connection, today: dt.date, days: int) -> dict[str, tuple[int, int, int]]:
    """Per client: (messages today, parts today, parts over the `days` days before today)."""
    rows = conn.execute(_USAGE, {"today": today, "since": today - dt.timedelta(days=days)})
    return {client: (messages, parts, before) for client, messages, parts, before in rows}
