"""SQL of the message store: inbound messages, outbound SMS, dead letters."""

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


@dataclass(frozen=True, slots=True)
class Parts:
    """An SMS as it is stored: one text per part (sealed ones encrypted), and how they join."""

    texts: list[str]
    coding: str
    reference: int
    sealed: bool = False


_INSERT_PARTS = """
INSERT INTO outbound (inbound_id, dedupe_key, part, parts, reference, coding, sender, recipient,
                      text, service, outcome, deadline, sealed, client)
SELECT %(inbound_id)s, %(key)s, p.part::int, %(parts)s, %(reference)s, %(coding)s, %(sender)s,
       %(recipient)s, p.text, %(service)s, %(outcome)s, %(deadline)s, %(sealed)s, %(client)s
FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS p(text, part)
"""
_ADD_REPLY = f"""
WITH reply AS (
    {_INSERT_PARTS}
    ON CONFLICT (inbound_id, part) DO NOTHING
    RETURNING id
), answered AS (
    UPDATE inbound SET state = 'answered', service = coalesce(service, %(service)s)
    WHERE id = %(inbound_id)s AND state IN ('received', 'dispatched')
)
SELECT id FROM reply ORDER BY id
"""


def _fields(parts: Parts, **fields: object) -> dict[str, object]:
    return {"texts": parts.texts, "parts": len(parts.texts), "reference": parts.reference,
            "coding": parts.coding, "sealed": parts.sealed, "key": None, "inbound_id": None,
            "client": None, **fields}


def add_reply(conn: psycopg.Connection, *, inbound: Inbound, parts: Parts, service: str | None,
              outcome: str, deadline: dt.datetime) -> list[int]:
    """Queue the reply to `inbound`, a row per part; none when it has one (a redelivered task)."""
    return [row[0] for row in conn.execute(_ADD_REPLY, _fields(
        parts, inbound_id=inbound.id, sender=inbound.shortcode, recipient=inbound.sender,
        service=service, outcome=outcome, deadline=deadline))]


_ADD_NOTICE = f"""
{_INSERT_PARTS}
ON CONFLICT (dedupe_key, part) DO NOTHING
RETURNING id
"""
_BY_KEY = "SELECT id FROM outbound WHERE dedupe_key = %s ORDER BY part"


def add_notice(conn: psycopg.Connection, *, key: str, sender: str, recipient: str, parts: Parts,
               deadline: dt.datetime, service: str | None = None, outcome: str | None = None,
               client: str | None = None) -> tuple[list[int], bool]:
    """Queue an SMS that answers no inbound message, once per `key`: (its part ids, whether new)."""
    new = [row[0] for row in conn.execute(_ADD_NOTICE, _fields(
        parts, key=key, sender=sender, recipient=recipient, service=service, outcome=outcome,
        deadline=deadline, client=client))]
    if new:
        return new, True
    return [row[0] for row in conn.execute(_BY_KEY, (key,))], False


# The claim is committed before the submit: a sender that dies after submitting
# leaves the row 'sending', and whoever claims it after `stale_s` flags the SMS as a
# possible duplicate. A claim younger than that belongs to a sender still at work.
_CLAIM = """
UPDATE outbound SET state = 'sending', claimed_at = now(), attempts = attempts + 1,
                    possible_duplicate = possible_duplicate OR state = 'sending'
WHERE id = %(id)s AND (state = 'queued' OR
                       (state = 'sending' AND claimed_at < now() - make_interval(secs => %(stale)s)))
RETURNING id, inbound_id, sender, recipient, text, deadline, sealed, part, parts, reference, coding
"""
_BUSY = "SELECT state = 'sending' FROM outbound WHERE id = %s"
_MARK_SENT = """
UPDATE outbound SET state = 'sent', sent_at = now(), transport_id = %(tid)s, error = NULL
WHERE id = %(id)s AND state = 'sending'
"""
# A receipt that came before the submit answer waits in `receipts` for its id.
_EARLY_RECEIPT = """
UPDATE outbound SET delivery = r.state, delivery_at = r.received_at
FROM receipts r WHERE outbound.id = %(id)s AND r.transport_id = %(tid)s
"""
_RELEASE = """
UPDATE outbound SET state = 'queued', error = %(reason)s, attempts = attempts - %(uncount)s,
       possible_duplicate = possible_duplicate OR %(in_doubt)s
WHERE id = %(id)s AND state = 'sending'
"""
_MARK_FAILED = """
UPDATE outbound SET state = 'failed', error = %s WHERE id = %s AND state IN ('queued', 'sending')
RETURNING inbound_id
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An SMS part claimed for sending."""

    id: int
    inbound_id: int | None
    sender: str
    recipient: str
    text: str
    deadline: dt.datetime
    sealed: bool
    part: int
    parts: int
    reference: int | None
    coding: str | None


def claim_outbound(conn: psycopg.Connection, outbound_id: int,
                   stale_s: float) -> Claimed | bool | None:
    """The part, claimed; True when another sender holds it; None when sent or failed."""
    with conn.cursor(row_factory=class_row(Claimed)) as cur:
        claimed = cur.execute(_CLAIM, {"id": outbound_id, "stale": stale_s}).fetchone()
    if claimed is not None:
        return claimed
    busy = conn.execute(_BUSY, (outbound_id,)).fetchone()
    return True if busy and busy[0] else None


def mark_sent(conn: psycopg.Connection, outbound_id: int, transport_id: str | None) -> None:
    """The transport accepted the part; a receipt that came first is applied now."""
    conn.execute(_MARK_SENT, {"id": outbound_id, "tid": transport_id})
    if transport_id:
        conn.execute(_EARLY_RECEIPT, {"id": outbound_id, "tid": transport_id})


def release(conn: psycopg.Connection, outbound_id: int, reason: str, *,
            count_attempt: bool = True, in_doubt: bool = False) -> None:
    """Back to the queue after a retryable failure (a rate limit is not a failed attempt);
    a part the operator may have taken all the same is flagged as a possible duplicate."""
    conn.execute(_RELEASE, {"id": outbound_id, "reason": reason, "in_doubt": in_doubt,
                            "uncount": 0 if count_attempt else 1})


def mark_failed(conn: psycopg.Connection, outbound_id: int,
                reason: str) -> tuple[int | None] | None:
    """The part will not be sent: (its inbound id,); None when it was sent or failed already."""
    return conn.execute(_MARK_FAILED, (reason, outbound_id)).fetchone()


FINAL_DELIVERY = ("delivered", "expired", "deleted", "undeliverable", "rejected")
_RECEIPT = """
INSERT INTO receipts (transport_id, state) VALUES (%(tid)s, %(state)s)
ON CONFLICT (transport_id) DO UPDATE SET state = EXCLUDED.state, received_at = now()
WHERE receipts.state <> ALL(%(final)s)
"""
_DELIVERY_BY_TRANSPORT = """
UPDATE outbound SET delivery = %(state)s, delivery_at = now()
WHERE transport_id = %(tid)s AND (delivery IS NULL OR delivery <> ALL(%(final)s))
"""
_DELIVERY_BY_ID = """
UPDATE outbound SET delivery = %(state)s, delivery_at = now()
WHERE id = %(id)s AND (delivery IS NULL OR delivery <> ALL(%(final)s))
"""


def record_receipt(conn: psycopg.Connection, transport_id: str, state: str) -> int:
    """A receipt by the operator's message id; kept for a submit answer still to come."""
    params = {"tid": transport_id, "state": state, "final": list(FINAL_DELIVERY)}
    conn.execute(_RECEIPT, params)
    return conn.execute(_DELIVERY_BY_TRANSPORT, params).rowcount


def record_delivery(conn: psycopg.Connection, outbound_id: int, state: str) -> int:
    """A receipt that names our own outbound id (Kannel's dlr-url carries it)."""
    return conn.execute(_DELIVERY_BY_ID, {"id": outbound_id, "state": state,
                                          "final": list(FINAL_DELIVERY)}).rowcount


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
# A client's own SMS (no service of ours wrote it) is bulk; a one-time code, though a client
# asked for it, is the citizen's and goes with the replies.
_STALE_OUTBOUND = """
SELECT id, client IS NOT NULL AND service IS NULL AS bulk FROM outbound
WHERE (state = 'queued' AND created_at < now() - make_interval(secs => %(age)s))
   OR (state = 'sending' AND claimed_at < now() - make_interval(secs => %(age)s))
ORDER BY created_at LIMIT %(limit)s
"""


_WAITING = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM inbound WHERE state IN ('received', 'dispatched')
                              LIMIT %(limit)s) AS unanswered)
     + (SELECT count(*) FROM (SELECT 1 FROM outbound WHERE state IN ('queued', 'sending')
                              AND inbound_id IS NOT NULL LIMIT %(limit)s) AS unsent)
"""


def waiting(conn: psycopg.Connection, limit: int) -> int:
    """Inbound messages waiting for an answer plus reply parts waiting to be sent, each
    counted up to `limit`."""
    return conn.execute(_WAITING, {"limit": limit}).fetchone()[0]


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


@dataclass(frozen=True, slots=True)
class Stale:
    """What the reconciler sends again, by the queue each belongs on."""

    inbound: list[int]
    replies: list[int]  # parts for the outbound queue: replies, codes, reminders
    bulk: list[int]  # parts a client sent through the API: the bulk queue


def stale(conn: psycopg.Connection, *, older_than_s: float, limit: int) -> Stale:
    """Inbound messages with no answer and queued SMS not sent, older than `older_than_s`,
    the SMS split by the queue they go back to."""
    inbound = [r[0] for r in conn.execute(_STALE_INBOUND, (older_than_s, limit))]
    replies: list[int] = []
    bulk: list[int] = []
    for outbound_id, is_bulk in conn.execute(_STALE_OUTBOUND,
                                             {"age": older_than_s, "limit": limit}):
        (bulk if is_bulk else replies).append(outbound_id)
    return Stale(inbound, replies, bulk)


# A sealed text is not shown: it carries a credential meant for the citizen's phone only.
_REPLIES = """
SELECT id, part, CASE WHEN sealed THEN NULL ELSE text END AS text, sealed, state, sent_at
FROM outbound WHERE inbound_id = %s ORDER BY part
"""


def replies(conn: psycopg.Connection, inbound_id: int) -> list[dict]:
    """The reply parts of an inbound message with their states; sealed texts left out."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(_REPLIES, (inbound_id,)).fetchall()


_REPLIES_TO = """
SELECT o.id, o.part, CASE WHEN o.sealed THEN NULL ELSE o.text END AS text, o.sealed, o.state,
       o.sent_at
FROM inbound i LEFT JOIN outbound o ON o.inbound_id = i.id
WHERE i.id = %(id)s AND i.source = %(source)s AND i.external_id = %(external_id)s
ORDER BY o.part
"""


def replies_to(conn: psycopg.Connection, inbound_id: int, *, source: str,
               external_id: str) -> list[dict] | None:
    """As `replies`, only if the inbound message came from `source` with `external_id`: the
    bridge proves it handed the message over; None when it did not (or there is none)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(_REPLIES_TO, {"id": inbound_id, "source": source,
                                         "external_id": external_id}).fetchall()
    if not rows:
        return None
    return [row for row in rows if row["id"] is not None]


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
