"""What became of each message, for `govsms trace`: the messages of one phone (its purged
ones found by the keyed digest of its number) or of one id, with their reply parts, dead
letters, replays and suppressions. Texts and numbers go out as stored; the caller masks."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

import psycopg
from psycopg.rows import dict_row

_FOR_PHONE = """
SELECT id FROM inbound
WHERE (sender = ANY(%(phones)s) OR sender_digest = ANY(%(digests)s)) AND received_at >= %(since)s
ORDER BY received_at DESC, id DESC LIMIT %(limit)s
"""
_OWN_FOR_PHONE = """
SELECT DISTINCT ON (coalesce(dedupe_key, id::text)) id FROM outbound
WHERE inbound_id IS NULL AND created_at >= %(since)s
  AND (recipient = ANY(%(phones)s) OR recipient_digest = ANY(%(digests)s))
ORDER BY coalesce(dedupe_key, id::text), part LIMIT %(limit)s
"""
_BY_EXTERNAL = "SELECT id FROM inbound WHERE source = %s AND external_id = %s"
_OF_OUTBOUND = "SELECT inbound_id, dedupe_key FROM outbound WHERE id = %s"
_INBOUND = """
SELECT i.id, i.source, i.external_id, i.sender, i.shortcode, i.text, i.received_at, i.service,
       i.state, i.purged_at, s.reason AS suppressed
FROM inbound i LEFT JOIN suppressions s ON s.inbound_id = i.id
WHERE i.id = ANY(%s) ORDER BY i.received_at, i.id
"""
_PARTS = """
SELECT id, inbound_id, dedupe_key, part, parts, sender, recipient, text, sealed, service,
       outcome, state, attempts, created_at, claimed_at, sent_at, transport_id, error,
       possible_duplicate, delivery, delivery_at, client, purged_at
FROM outbound WHERE inbound_id = ANY(%(inbound)s)
   OR dedupe_key IN (SELECT dedupe_key FROM outbound WHERE id = ANY(%(own)s))
ORDER BY created_at, id
"""
_DEAD = """
SELECT d.id, d.inbound_id, d.outbound_id, d.task, d.reason, d.created_at, d.replayed_at,
       r.id AS replayed_as
FROM dead_letters d
LEFT JOIN inbound r ON r.source = 'replay' AND r.external_id = 'dead-letter:' || d.id
WHERE d.inbound_id = ANY(%(inbound)s) OR d.outbound_id = ANY(%(outbound)s)
ORDER BY d.created_at, d.id
"""


def for_phone(conn: psycopg.Connection, phones: Sequence[str], digests: Sequence[str],
              since: dt.datetime, limit: int) -> tuple[list[int], list[int]]:
    """The latest inbound messages from these numbers, and the SMS of their own (codes,
    notices, client messages) to them: (inbound ids, first parts' ids)."""
    args = {"phones": list(phones), "digests": list(digests), "since": since, "limit": limit}
    return ([r[0] for r in conn.execute(_FOR_PHONE, args)],
            [r[0] for r in conn.execute(_OWN_FOR_PHONE, args)])


def by_external(conn: psycopg.Connection, source: str, external_id: str) -> int | None:
    """The inbound message a bridge handed over as `external_id` on link `source`."""
    row = conn.execute(_BY_EXTERNAL, (source, external_id)).fetchone()
    return row[0] if row else None


def of_outbound(conn: psycopg.Connection, outbound_id: int) -> tuple[int | None, bool]:
    """The inbound message an SMS part answers, and whether the part exists at all."""
    row = conn.execute(_OF_OUTBOUND, (outbound_id,)).fetchone()
    return (row[0], True) if row else (None, False)


def details(conn: psycopg.Connection, inbound_ids: Sequence[int], own_ids: Sequence[int]
            ) -> tuple[list[dict], dict[object, list[dict]], list[dict]]:
    """The inbound rows, the SMS parts by inbound id (an SMS of its own by its key), and
    the dead letters of both."""
    with conn.cursor(row_factory=dict_row) as cur:
        inbound = cur.execute(_INBOUND, (list(inbound_ids),)).fetchall()
        parts: dict[object, list[dict]] = defaultdict(list)
        for row in cur.execute(_PARTS, {"inbound": list(inbound_ids), "own": list(own_ids)}):
            parts[row["inbound_id"] or row["dedupe_key"]].append(row)
        part_ids = [p["id"] for rows in parts.values() for p in rows]
        dead = cur.execute(_DEAD, {"inbound": list(inbound_ids), "outbound": part_ids}).fetchall()
    return inbound, dict(parts), dead
