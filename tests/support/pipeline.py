"""The pipeline a worker builds, and MOs recorded as the ingest records them, without Celery."""

from __future__ import annotations

import datetime as dt

import psycopg

from parsers import KeywordIndex
from replies.sealing import Sealer
from replies.templates import Templates
from services.registry import Registry, default_registry
from tests.support.keys import KEY
from workers import db, messages, pipeline
from workers.settings import DEFAULT_SHORTCODES, Settings
from workers.suppression import Guard

PHONE = "+77011234567"


def make_pipeline(database_url: str, registry: Registry | None = None) -> pipeline.Pipeline:
    """The pipeline a worker builds, on `database_url`, with the default registry or `registry`."""
    shortcodes = DEFAULT_SHORTCODES if registry is None else {"1414": [s.name for s in registry]}
    registry = registry or default_registry()
    return pipeline.Pipeline(
        pool=db.create_pool(database_url, statement_timeout_ms=2000,
                            transaction_pooler=Settings().database_transaction_pooler),
        index=KeywordIndex.build(registry, shortcodes),
        registry=registry, templates=Templates.load(), sla=dt.timedelta(seconds=60),
        sealer=Sealer(KEY), senders={"account_registration": "8188"},
        guard=Guard(frozenset(shortcodes)))


def receive(conn: psycopg.Connection, text: str, *, sender: str = PHONE, external_id: str = "1",
            shortcode: str = "1414") -> int:
    """Record an MO as the ingest would; its inbound id."""
    return messages.record_inbound(conn, source="test", external_id=external_id, sender=sender,
                                   shortcode=shortcode, text=text).id
