"""Outbound SMS: parts queued, claimed, sent or failed; delivery receipts; replies listed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from workers.messages.inbound import Inbound


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
# Every part of every reply of a batch as one row each, the inbound messages answered with
# them: one statement. A reply its message already has (a redelivered task) adds nothing.
_ADD_REPLIES = """
WITH p AS (
    SELECT * FROM unnest(%(inbound_id)s::bigint[], %(part)s::int[], %(parts)s::int[],
                         %(reference)s::int[], %(coding)s::text[], %(sender)s::text[],
                         %(recipient)s::text[], %(text)s::text[], %(service)s::text[],
                         %(outcome)s::text[], %(deadline)s::timestamptz[], %(sealed)s::bool[])
        AS p(inbound_id, part, parts, reference, coding, sender, recipient, text, service,
             outcome, deadline, sealed)
), reply AS (
    INSERT INTO outbound (inbound_id, part, parts, reference, coding, sender, recipient, text,
                          service, outcome, deadline, sealed)
    SELECT inbound_id, part, parts, reference, coding, sender, recipient, text, service,
           outcome, deadline, sealed FROM p
    ON CONFLICT (inbound_id, part) DO NOTHING
    RETURNING id
), answered AS (
    UPDATE inbound SET state = 'answered', service = coalesce(inbound.service, p.service)
    FROM p WHERE inbound.id = p.inbound_id AND p.part = 1
      AND inbound.state IN ('received', 'dispatched')
)
SELECT id FROM reply ORDER BY id
"""


def _fields(parts: Parts, **fields: object) -> dict[str, object]:
    return {"texts": parts.texts, "parts": len(parts.texts), "reference": parts.reference,
            "coding": parts.coding, "sealed": parts.sealed, "key": None, "inbound_id": None,
            "client": None, **fields}


@dataclass(frozen=True, slots=True)
class NewReply:
    """The reply to an inbound message, to queue: its parts, and what answered it."""

    inbound: Inbound
    parts: Parts
    service: str | None
    outcome: str
    deadline: dt.datetime


_REPLY_COLUMNS = ("inbound_id", "part", "parts", "reference", "coding", "sender", "recipient",
                  "text", "service", "outcome", "deadline", "sealed")


def add_replies(conn: psycopg.Connection, replies: Sequence[NewReply]) -> list[int]:
    """Queue the replies, a row per part, in one statement: the new part ids. A message that
    has its reply already (a redelivered task) gets none."""
    if not replies:
        return []
    rows = [(r.inbound.id, number, len(r.parts.texts), r.parts.reference, r.parts.coding,
             r.inbound.shortcode, r.inbound.sender, text, r.service, r.outcome, r.deadline,
             r.parts.sealed)
            for r in replies for number, text in enumerate(r.parts.texts, 1)]
    columns = dict(zip(_REPLY_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    return [row[0] for row in conn.execute(_ADD_REPLIES, columns)]


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
WHERE id = ANY(%(ids)s) AND (state = 'queued' OR
                       (state = 'sending' AND claimed_at < now() - make_interval(secs => %(stale)s)))
RETURNING id, inbound_id, sender, recipient, text, deadline, sealed, part, parts, reference, coding
"""
_BUSY = "SELECT id FROM outbound WHERE id = ANY(%s) AND state = 'sending'"
# Parts claimed but not tried (the batch ran out of time): queued again, the attempt uncounted.
_UNCLAIM = """
UPDATE outbound SET state = 'queued', attempts = attempts - 1
WHERE id = ANY(%s) AND state = 'sending'
"""
# Sent, and a receipt that came before the submit answer (it waits in `receipts`) applied.
_MARK_SENT = """
UPDATE outbound SET state = 'sent', sent_at = now(), transport_id = t.tid, error = NULL,
       delivery = coalesce(r.state, outbound.delivery),
       delivery_at = coalesce(r.received_at, outbound.delivery_at)
FROM unnest(%s::bigint[], %s::text[]) AS t(id, tid) LEFT JOIN receipts r ON r.transport_id = t.tid
WHERE outbound.id = t.id AND outbound.state = 'sending'
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


def claim_many(conn: psycopg.Connection, ids: list[int],
               stale_s: float) -> tuple[list[Claimed], list[int]]:
    """The parts claimed, in the order of `ids`, and those another sender holds; the rest
    are sent or failed already. One statement for the batch."""
    with conn.cursor(row_factory=class_row(Claimed)) as cur:
        found = {c.id: c for c in cur.execute(_CLAIM, {"ids": ids, "stale": stale_s})}
    missing = [i for i in ids if i not in found]
    busy = {row[0] for row in conn.execute(_BUSY, (missing,))} if missing else set()
    return [found[i] for i in ids if i in found], [i for i in missing if i in busy]


def unclaim(conn: psycopg.Connection, ids: list[int]) -> None:
    """Claimed parts not tried after all: queued again, as if never claimed."""
    if ids:
        conn.execute(_UNCLAIM, (ids,))


def mark_sent(conn: psycopg.Connection, sent: Sequence[tuple[int, str | None]]) -> None:
    """The transport accepted these parts (id, the operator's id for it), in one statement;
    a receipt that came first is applied now."""
    if sent:
        conn.execute(_MARK_SENT, ([i for i, _ in sent], [tid for _, tid in sent]))


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


def record_receipt(conn: psycopg.Connection, transport_id: str, state: str) -> int:
    """A receipt by the operator's message id; kept for a submit answer still to come."""
    params = {"tid": transport_id, "state": state, "final": list(FINAL_DELIVERY)}
    conn.execute(_RECEIPT, params)
    return conn.execute(_DELIVERY_BY_TRANSPORT, params).rowcount


_DELIVERIES_BY_ID = """
WITH r(id, state) AS (SELECT * FROM unnest(%(ids)s::bigint[], %(states)s::text[])),
updated AS (
    UPDATE outbound o SET delivery = r.state, delivery_at = now() FROM r
    WHERE o.id = r.id AND (o.delivery IS NULL OR o.delivery <> ALL(%(final)s)))
SELECT r.id FROM r WHERE EXISTS (SELECT 1 FROM outbound o WHERE o.id = r.id)
"""


def record_deliveries(conn: psycopg.Connection, receipts: Sequence[tuple[int, str]]) -> list[bool]:
    """Receipts that name our own outbound ids (Kannel's dlr-url carries them), in one
    statement; for each, whether the id is one of ours. In the order given, as one at a time
    would: a final state is not overwritten, by a later receipt or one of the same batch."""
    states: dict[int, str] = {}
    for outbound_id, state in receipts:
        if states.get(outbound_id) not in FINAL_DELIVERY:
            states[outbound_id] = state
    known = {row[0] for row in conn.execute(_DELIVERIES_BY_ID, {
        "ids": list(states), "states": list(states.values()), "final": list(FINAL_DELIVERY)})}
    return [outbound_id in known for outbound_id, _ in receipts]


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
SELECT o.id, o.part, CASE WHEN o.sealed OR o.purged_at IS NOT NULL THEN NULL ELSE o.text END
       AS text, o.sealed, o.state, o.sent_at
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


# The reply of each inbound message `i`, its parts joined in order; a sealed text never leaves.
REPLY_OF = """
LEFT JOIN LATERAL (
    SELECT (array_agg(o.outcome ORDER BY o.part))[1] AS outcome,
           CASE WHEN bool_or(o.sealed) THEN NULL
                ELSE string_agg(o.text, '' ORDER BY o.part) END AS reply,
           coalesce(bool_or(o.sealed), false) AS sealed
    FROM outbound o WHERE o.inbound_id = i.id
) r ON true
"""
_ANSWERS = f"""
SELECT i.id, i.service, i.state, r.outcome, r.reply, r.sealed FROM inbound i {REPLY_OF}
WHERE i.id = ANY(%s)
"""


def answers(conn: psycopg.Connection, inbound_ids: Sequence[int]) -> dict[int, dict]:
    """By inbound id: its service, state, and its reply's outcome, text (None when sealed), seal."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return {r["id"]: r for r in cur.execute(_ANSWERS, (list(inbound_ids),))}


# A client's own SMS, or a one-time code's, by its key: the parts and what became of each,
# never the text. `first`: the id the client was given (its first part).
_PARTS_OF = """
SELECT o.id, o.part, o.parts, o.sender, o.recipient, o.state, o.attempts, o.created_at,
       o.sent_at, o.delivery, o.delivery_at, o.purged_at IS NOT NULL AS purged
FROM outbound o
WHERE o.client = %(client)s AND o.dedupe_key = coalesce(%(key)s, (
    SELECT dedupe_key FROM outbound WHERE id = %(first)s AND part = 1 AND service IS NULL))
ORDER BY o.part
"""


def client_parts(conn: psycopg.Connection, client: str, *, first: int | None = None,
                 key: str | None = None) -> list[dict]:
    """The parts of the SMS `client` sent, found by its key, or for a message of its own
    by its first part's id; none when it is another's or no SMS."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(_PARTS_OF, {"first": first, "key": key, "client": client}).fetchall()
