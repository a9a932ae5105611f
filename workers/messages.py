"""SQL of the message store: inbound messages, outbound SMS, dead letters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row


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
class Outbound:
    """A mobile-terminated SMS part to send."""

    id: int
    inbound_id: int | None
    sender: str
    recipient: str
    text: str
    deadline: dt.datetime
    sealed: bool


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


def record_inbound(conn: psycopg.Connection, *, source: str, external_id: str, sender: str,
                   shortcode: str, text: str, tariff: tuple[int, str] | None = None) -> Recorded:
    """Record an inbound SMS once per (source, external id), with what it cost the sender."""
    amount, currency = tariff or (None, None)
    with conn.cursor(row_factory=class_row(Recorded)) as cur:
        row = cur.execute(_RECORD_INBOUND, (source, external_id, sender, shortcode, text,
                                            amount, currency)).fetchone()
    assert row is not None
    return row


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


_ADD_REPLY = """
WITH reply AS (
    INSERT INTO outbound (inbound_id, part, sender, recipient, text, service, outcome, deadline,
                          sealed)
    VALUES (%(inbound_id)s, 1, %(sender)s, %(recipient)s, %(text)s, %(service)s, %(outcome)s,
            %(deadline)s, %(sealed)s)
    ON CONFLICT (inbound_id, part) DO NOTHING
    RETURNING id
), answered AS (
    UPDATE inbound SET state = 'answered', service = coalesce(service, %(service)s)
    WHERE id = %(inbound_id)s AND state IN ('received', 'dispatched')
)
SELECT id FROM reply
"""


def add_reply(conn: psycopg.Connection, *, inbound: Inbound, text: str, service: str | None,
              outcome: str, deadline: dt.datetime, sealed: bool = False) -> int | None:
    """Queue the reply to `inbound`; None when it already has one (a redelivered task)."""
    row = conn.execute(_ADD_REPLY, {
        "inbound_id": inbound.id, "sender": inbound.shortcode, "recipient": inbound.sender,
        "text": text, "service": service, "outcome": outcome, "deadline": deadline,
        "sealed": sealed,
    }).fetchone()
    return row[0] if row else None


_ADD_NOTICE = """
INSERT INTO outbound (dedupe_key, part, sender, recipient, text, service, outcome, deadline,
                      sealed, client)
VALUES (%(key)s, 1, %(sender)s, %(recipient)s, %(text)s, %(service)s, %(outcome)s, %(deadline)s,
        %(sealed)s, %(client)s)
ON CONFLICT (dedupe_key, part) DO NOTHING
RETURNING id
"""
_BY_KEY = "SELECT id FROM outbound WHERE dedupe_key = %s AND part = 1"


def add_notice(conn: psycopg.Connection, *, key: str, sender: str, recipient: str, text: str,
               deadline: dt.datetime, service: str | None = None, outcome: str | None = None,
               sealed: bool = False, client: str | None = None) -> tuple[int, bool]:
    """Queue an SMS that answers no inbound message, once per `key`: (its id, whether new)."""
    row = conn.execute(_ADD_NOTICE, {
        "key": key, "sender": sender, "recipient": recipient, "text": text, "service": service,
        "outcome": outcome, "deadline": deadline, "sealed": sealed, "client": client,
    }).fetchone()
    if row is not None:
        return row[0], True
    existing = conn.execute(_BY_KEY, (key,)).fetchone()
    assert existing is not None
    return existing[0], False


# FOR UPDATE, not SKIP LOCKED: a duplicate delivery waits for the first and then
# finds the row sent, instead of acknowledging a row another sender may yet drop.
_CLAIM_OUTBOUND = """
SELECT id, inbound_id, sender, recipient, text, deadline, sealed FROM outbound
WHERE id = %s AND state = 'queued'
FOR UPDATE
"""
_MARK_SENT = """
UPDATE outbound SET state = 'sent', sent_at = now(), transport_id = %s, attempts = attempts + 1
WHERE id = %s
"""
_MARK_FAILED = """
UPDATE outbound SET state = 'failed', error = %s, attempts = attempts + 1 WHERE id = %s
"""
_COUNT_ATTEMPT = "UPDATE outbound SET attempts = attempts + 1, error = %s WHERE id = %s"


def claim_outbound(conn: psycopg.Connection, outbound_id: int) -> Outbound | None:
    """Lock a queued SMS for sending until the transaction ends; None if it is not queued."""
    with conn.cursor(row_factory=class_row(Outbound)) as cur:
        return cur.execute(_CLAIM_OUTBOUND, (outbound_id,)).fetchone()


def mark_sent(conn: psycopg.Connection, outbound_id: int, transport_id: str | None) -> None:
    """The transport accepted the SMS."""
    conn.execute(_MARK_SENT, (transport_id, outbound_id))


def mark_failed(conn: psycopg.Connection, outbound_id: int, reason: str) -> None:
    """The transport refused the SMS for good."""
    conn.execute(_MARK_FAILED, (reason, outbound_id))


def count_attempt(conn: psycopg.Connection, outbound_id: int, reason: str) -> None:
    """A send attempt failed in a way worth retrying."""
    conn.execute(_COUNT_ATTEMPT, (reason, outbound_id))


_ADD_DEAD_LETTER = """
WITH dead AS (
    UPDATE inbound SET state = 'dead' WHERE id = %(inbound_id)s AND state <> 'answered'
)
INSERT INTO dead_letters (inbound_id, outbound_id, task, reason)
VALUES (%(inbound_id)s, %(outbound_id)s, %(task)s, %(reason)s)
RETURNING id
"""


def add_dead_letter(conn: psycopg.Connection, *, task: str, reason: str,
                    inbound_id: int | None = None, outbound_id: int | None = None) -> int:
    """Record a message the pipeline gave up on, with the reason an operator will read."""
    row = conn.execute(_ADD_DEAD_LETTER, {"inbound_id": inbound_id, "outbound_id": outbound_id,
                                          "task": task, "reason": reason}).fetchone()
    assert row is not None
    return row[0]


_STALE_INBOUND = """
SELECT id FROM inbound
WHERE state IN ('received', 'dispatched') AND received_at < now() - make_interval(secs => %s)
ORDER BY received_at LIMIT %s
"""
_STALE_OUTBOUND = """
SELECT id FROM outbound
WHERE state = 'queued' AND created_at < now() - make_interval(secs => %s)
ORDER BY created_at LIMIT %s
"""


_FEES = """
SELECT count(*), coalesce(sum(tariff_amount), 0), min(tariff_currency) FROM inbound
WHERE shortcode = %s AND tariff_amount IS NOT NULL AND received_at >= %s AND received_at < %s
"""


def fees(conn: psycopg.Connection, shortcode: str, start: dt.datetime,
         end: dt.datetime) -> tuple[int, int, str | None]:
    """MOs charged on `shortcode` in [start, end): (count, total, currency)."""
    row = conn.execute(_FEES, (shortcode, start, end)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def stale(conn: psycopg.Connection, *, older_than_s: float, limit: int) -> tuple[list[int], list[int]]:
    """Inbound messages with no answer and queued SMS not sent, older than `older_than_s`."""
    inbound = [r[0] for r in conn.execute(_STALE_INBOUND, (older_than_s, limit))]
    outbound = [r[0] for r in conn.execute(_STALE_OUTBOUND, (older_than_s, limit))]
    return inbound, outbound


# A sealed text is not shown: it carries a credential meant for the citizen's phone only.
_REPLIES = """
SELECT id, part, CASE WHEN sealed THEN NULL ELSE text END AS text, sealed, state, sent_at
FROM outbound WHERE inbound_id = %s ORDER BY part
"""


def replies(conn: psycopg.Connection, inbound_id: int) -> list[dict]:
    """The reply parts of an inbound message with their states; sealed texts left out."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(_REPLIES, (inbound_id,)).fetchall()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the pipeline gave up on."""

    id: int
    created_at: dt.datetime
    task: str
    reason: str
    inbound_id: int | None
    outbound_id: int | None
    replayed_at: dt.datetime | None


_DEAD_LETTERS = """
SELECT id, created_at, task, reason, inbound_id, outbound_id, replayed_at FROM dead_letters
WHERE (%(all)s OR replayed_at IS NULL) AND (%(id)s::bigint IS NULL OR id = %(id)s)
ORDER BY id
"""


def dead_letters(conn: psycopg.Connection, *, include_replayed: bool = False,
                 dead_letter_id: int | None = None) -> list[DeadLetter]:
    """Open dead letters (or all of them), oldest first; or the one with `dead_letter_id`."""
    with conn.cursor(row_factory=class_row(DeadLetter)) as cur:
        return cur.execute(_DEAD_LETTERS, {"all": include_replayed or dead_letter_id is not None,
                                           "id": dead_letter_id}).fetchall()


_REQUEUE_OUTBOUND = """
UPDATE outbound SET state = 'queued', error = NULL WHERE id = %s AND state = 'failed' RETURNING id
"""
# A replayed inbound message is a new message (its own reply), once per dead letter.
_REPLAY_INBOUND = """
INSERT INTO inbound (source, external_id, sender, shortcode, text)
SELECT 'replay', 'dead-letter:' || %(dead)s, sender, shortcode, text FROM inbound WHERE id = %(id)s
ON CONFLICT (source, external_id) DO NOTHING
RETURNING id
"""
_MARK_REPLAYED = "UPDATE dead_letters SET replayed_at = now() WHERE id = %s AND replayed_at IS NULL"


def replay_dead_letter(conn: psycopg.Connection, letter: DeadLetter) -> tuple[str, int] | None:
    """Queue a dead letter again: ("outbound", id) to send, ("inbound", id) to dispatch, or None.

    A failed SMS goes back to the queue as it was; an inbound message is received
    again as a new message, so it gets a reply of its own even if it had one.
    """
    conn.execute(_MARK_REPLAYED, (letter.id,))
    if letter.outbound_id is not None:
        row = conn.execute(_REQUEUE_OUTBOUND, (letter.outbound_id,)).fetchone()
        return ("outbound", row[0]) if row else None
    if letter.inbound_id is not None:
        row = conn.execute(_REPLAY_INBOUND, {"dead": letter.id, "id": letter.inbound_id}).fetchone()
        return ("inbound", row[0]) if row else None
    return None


_DESCRIBE = {
    "inbound": "SELECT sender, shortcode, text, received_at, service, state FROM inbound "
               "WHERE id = %s",
    "outbound": "SELECT sender, recipient, CASE WHEN sealed THEN '(sealed)' ELSE text END AS text,"
                " state, attempts, error FROM outbound WHERE id = %s",
}


def describe(conn: psycopg.Connection, table: str, message_id: int) -> dict:
    """A message's fields for an operator (a sealed text stays hidden)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(_DESCRIBE[table], (message_id,)).fetchone() or {}
