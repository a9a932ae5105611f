"""One message of every kind the pipeline makes, from one citizen: what `govsms trace` and
the console's tests look for, and the pattern of a number shown unmasked."""

from __future__ import annotations

import re

import psycopg

from replies.transports.fake import MemoryTransport
from tests.support.personas import add_persona
from tests.support.pipeline import make_pipeline, receive
from workers import messages, pipeline

CITIZEN, IIN = "+77019990001", "880102300452"
UNMASKED = re.compile(r"(?<![\w-])\+?\d{10,15}(?![\w-])")


def made(conn: psycopg.Connection, database_url: str) -> dict[str, int]:
    """One message of each kind from CITIZEN, by kind: the inbound id (an SMS's part id)."""
    add_persona(conn, phone=CITIZEN, iin=IIN, housing=17)
    p = make_pipeline(database_url)
    kinds = {"answered": "4", "not_found": "hello", "delivered": "5 " + IIN,
             "undeliverable": "Техосмотр 123ABC01", "flagged": "hello again",
             "dead": "4 " + IIN, "suppressed": "x"}
    ids = {kind: receive(conn, text, sender=CITIZEN, external_id=kind)
           for kind, text in kinds.items()}
    conn.execute("UPDATE inbound SET sender = 'BEELINE' WHERE id = %s", (ids["suppressed"],))
    try:
        live = [i for kind, i in ids.items() if kind != "dead"]
        routed = pipeline.dispatch(p, live)
        queued = list(routed.outbound)
        for service, service_ids in routed.services.items():
            queued += pipeline.answer(p, service, service_ids)
        messages.add_dead_letter(conn, task="answer", inbound_id=ids["dead"],
                                 reason="KeyError in housing_queue")
        conn.execute("UPDATE inbound SET state = 'dead' WHERE id = %s", (ids["dead"],))
        [letter] = messages.dead_letters(conn)
        _, replayed = messages.replay_dead_letter(conn, letter)
        queued += pipeline.dispatch(p, [replayed]).outbound
        queued += pipeline.answer(p, "housing_queue", [replayed])
        notice, _ = messages.add_notice(conn, key="n1", sender="EGOV", recipient=CITIZEN,
                                        client="portal", parts=pipeline.to_parts("Gotovo"),
                                        deadline=letter.created_at)
        pipeline.deliver(p.pool, MemoryTransport(), p.sealer, [*queued, *notice])
    finally:
        p.pool.close()
    part = {kind: conn.execute("SELECT id FROM outbound WHERE inbound_id = %s",
                               (ids[kind],)).fetchone()[0]
            for kind in ("delivered", "undeliverable", "flagged")}
    messages.record_deliveries(conn, [(part["delivered"], "delivered"),
                                      (part["undeliverable"], "undeliverable")])
    conn.execute("UPDATE outbound SET possible_duplicate = true, attempts = 2 WHERE id = %s",
                 (part["flagged"],))
    return {**ids, "replayed": replayed, "notice": notice[0]}
