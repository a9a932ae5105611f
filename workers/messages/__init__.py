"""The message store, one module per entity with its SQL beside the function that runs it.

    inbound.py      recording an MO once, the unfinished ones, where each was routed, those
                    suppressed (never answered) and why
    outbound.py     SMS parts: queued, claimed, sent, failed; receipts; replies listed
    dead.py         dead letters: recorded, listed, replayed, described
    reports.py      what the reconciler sends again, backlog, fees, SLA, the export, bench figures
    metrics.py      the counts behind the Prometheus series
    callbacks.py    the events API clients are called back with, leased and finished
    purge.py        personal data past retention: texts emptied, numbers masked and digested
    trace.py        what became of the messages of one phone or id (`govsms trace`)

No other module of workers/ or bench/ queries inbound, outbound, dead_letters or
receipts (tests/workers/test_store_layout.py). The public functions are re-exported here, so a
caller writes `messages.record_inbound(...)` whichever module holds it.
"""

from workers.messages.dead import (
    DeadLetter,
    add_dead_letter,
    dead_letters,
    describe,
    open_dead_letters,
    replay_dead_letter,
)
from workers.messages.inbound import (
    MAX_TEXT,
    Inbound,
    NewInbound,
    Recorded,
    mark_dispatched,
    record_inbound,
    record_inbound_many,
    suppress,
    suppressed_reason,
    unfinished_inbound,
)
from workers.messages.outbound import (
    FINAL_DELIVERY,
    REPLY_OF,
    Claimed,
    NewReply,
    Parts,
    add_notice,
    add_replies,
    answers,
    claim_many,
    client_parts,
    mark_failed,
    mark_sent,
    record_deliveries,
    record_receipt,
    release,
    replies,
    replies_to,
    unclaim,
)
from workers.messages.reports import Stale, fees, received_between, sla, stale, waiting

__all__ = [
    "FINAL_DELIVERY", "MAX_TEXT", "REPLY_OF", "Claimed", "DeadLetter", "Inbound", "NewInbound",
    "NewReply", "Parts", "Recorded", "Stale", "add_dead_letter", "add_notice", "add_replies", "answers",
    "claim_many", "client_parts", "dead_letters", "describe", "fees", "mark_dispatched",
    "mark_failed", "mark_sent", "open_dead_letters", "received_between", "record_deliveries",
    "record_inbound", "record_inbound_many", "record_receipt", "release", "replay_dead_letter",
    "replies", "replies_to", "sla", "stale", "suppress", "suppressed_reason", "unclaim",
    "unfinished_inbound", "waiting",
]
