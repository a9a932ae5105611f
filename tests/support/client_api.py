"""The client API's clients, a clock that stands still, and the code an SMS carried."""

from __future__ import annotations

import datetime as dt
import re

from replies.sealing import Sealer
from replies.transports.fake import MemoryTransport
from tests.support.keys import KEY
from workers import db, pipeline

PORTAL, PARTNER = "portal-secret-0123456789abcdef0123", "partner-secret-0123456789abcdef012"
PHONE, OTHER_PHONE, IIN = "+77011234567", "+77017654321", "880102300452"
T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock that stands still until moved."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def auth(secret: str = PORTAL) -> dict[str, str]:
    """The header of a client with this bearer secret."""
    return {"Authorization": f"Bearer {secret}"}


def sent_code(conn, database_url: str) -> str:
    """Deliver what is queued, as the outbound worker would; the code in the last SMS."""
    pool = db.create_pool(database_url, statement_timeout_ms=2000)
    transport = MemoryTransport()
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM outbound WHERE state = 'queued'")]
        pipeline.deliver(pool, transport, Sealer(KEY), ids)
    finally:
        pool.close()
    match = re.fullmatch(r"Kod: (\d{6})\. Nikomu ne soobshaite etot kod\. Kod deistvitelen "
                         r"10 minut\. eGov", transport.sent[-1].text)
    assert match and transport.sent[-1].sender == "1414"
    return match[1]
