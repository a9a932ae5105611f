"""Inbound messages: recording each once, the unfinished ones, where each was routed, those
never to be answered (suppressed) and why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

MAX_TEXT = 10_000
"""The longest inbound text the gateway takes, from any door (HTTP, SMPP)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A mobile-originated SMS as recorded."""

    id: int
    sender: str
    shortcode: str
    text: str
    received_at: dt.datetime
    state: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """The result of recording an inbound message: its id, and whether it was new."""

    id: int
    new: bool
    state: str


# `xmax = 0` tells a freshly inserted row from one the conflict clause only touched.
_RECORD_INBOUND = """
INSERT INTO inbound (source, external_id, sender, shortcode, text, tariff_amount, tariff_currency)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source, external_id) DO UPDATE SET source = EXCLUDED.source
RETURNING id, (xmax = 0) AS new, state
"""


@dataclass(frozen=True, slots=True)
class NewInbound:
    """An inbound SMS to record."""

    source: str
    external_id: str
    sender: str
    shortcode: str
    text: str
    tariff: tuple[int, str] | None = None  # what it cost the sender: amount, currency


def record_inbound(conn: psycopg.Connection, *, source: str, external_id: str, sender: str,
                   shortcode: str, text: str, tariff: tuple[int, str] | None = None) -> Recorded:
    """Record an inbound SMS once per (source, external id), with what it cost the sender."""
    return record_inbound_many(conn, [NewInbound(source, external_id, sender, shortcode, text,
                                                 tariff)])[0]


def record_inbound_many(conn: psycopg.Connection, rows: Sequence[NewInbound]) -> list[Recorded]:
    """Record inbound SMS, each once per (source, external id), in one round trip."""
    params = [(r.source, r.external_id, r.sender, r.shortcode, r.text,
               *(r.tariff or (None, None))) for r in rows]
    recorded: list[Recorded] = []
    with conn.cursor(row_factory=class_row(Recorded)) as cur:
        cur.executemany(_RECORD_INBOUND, params, returning=True)
        while True:
            recorded.append(cur.fetchone())
            if not cur.nextset():
                break
    return recorded


_UNFINISHED_INBOUND = """
SELECT id, sender, shortcode, text, received_at, state FROM inbound
WHERE id = ANY(%s) AND state IN ('received', 'dispatched')
ORDER BY id
"""


def unfinished_inbound(conn: psycopg.Connection, ids: Sequence[int]) -> list[Inbound]:
    """Those of `ids` that have neither an answer nor a dead letter yet."""
    with conn.cursor(row_factory=class_row(Inbound)) as cur:
        return cur.execute(_UNFINISHED_INBOUND, (list(ids),)).fetchall()


_MARK_DISPATCHED = """
UPDATE inbound SET state = 'dispatched', service = route.service
FROM unnest(%s::bigint[], %s::text[]) AS route(id, service)
WHERE inbound.id = route.id AND inbound.state = 'received'
"""


def mark_dispatched(conn: psycopg.Connection, routes: dict[int, str]) -> None:
    """Record which service each inbound message was routed to."""
    conn.execute(_MARK_DISPATCHED, (list(routes), list(routes.values())))


_SUPPRESS = """
WITH marked AS (
    UPDATE inbound SET state = 'suppressed'
    FROM unnest(%s::bigint[], %s::text[]) AS s(id, reason)
    WHERE inbound.id = s.id AND inbound.state IN ('received', 'dispatched')
    RETURNING inbound.id, s.reason
)
INSERT INTO suppressions (inbound_id, reason) SELECT id, reason FROM marked
ON CONFLICT (inbound_id) DO NOTHING
"""


def suppress(conn: psycopg.Connection, reasons: dict[int, str]) -> None:
    """Record that these messages get no reply, each with its reason (one statement)."""
    if reasons:
        conn.execute(_SUPPRESS, (list(reasons), list(reasons.values())))


_SUPPRESSED = "SELECT reason FROM suppressions WHERE inbound_id = %s"


def suppressed_reason(conn: psycopg.Connection, inbound_id: int) -> str | None:
    """Why the message gets no reply, if it was suppressed."""
    row = conn.execute(_SUPPRESSED, (inbound_id,)).fetchone()
    return row[0] if row else None
