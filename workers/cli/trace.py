"""`govsms trace`: what became of each message of one phone or one id (workers/trace.py)."""

from __future__ import annotations

import datetime as dt
import json

import click

from workers.cli.common import age, cli_operator, connect
from workers.settings import load_settings


@click.command()
@click.argument("phone", required=False)
@click.option("--inbound", type=int, help="One inbound message, by its id")
@click.option("--outbound", type=int, help="The message an SMS part belongs to, by its id")
@click.option("--external", metavar="LINK:ID", help="The MO a bridge handed over as ID on LINK")
@click.option("--since", default="24h", show_default=True, metavar="AGE",
              help="With PHONE: messages this recent (30d, 12h, 90m)")
@click.option("--limit", default=50, show_default=True, help="With PHONE: at most this many")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text")
def trace(phone: str | None, inbound: int | None, outbound: int | None, external: str | None,
          since: str, limit: int, as_json: bool) -> None:
    """The timeline of each message of PHONE (any form: 87010000001, +7 701 000 0001), or of
    one id: received, parsed, each reply part's states and receipt, dead letters, replays,
    suppressions. Numbers, IINs and plates masked."""
    from parsers import KeywordIndex
    from services.registry import default_registry
    from workers import audit
    from workers import trace as timeline

    given = [x for x in (phone, inbound, outbound, external) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give one of PHONE, --inbound, --outbound, --external")
    link = None
    if external is not None:
        link, _, external_id = external.partition(":")
        if not link or not external_id:
            raise click.BadParameter("LINK:ID, the link (smsc) and the bridge's id",
                                     param_hint="--external")
    settings = load_settings()
    query = timeline.Query(phone=phone, inbound=inbound, outbound=outbound,
                           external=(link, external_id) if link else None,
                           since=dt.datetime.now(dt.UTC) - age(since), limit=limit)
    if phone is not None and not timeline.phone_forms(phone, settings.regions.values()):
        raise click.BadParameter("not a phone number of the senders' countries",
                                 param_hint="PHONE")
    index = KeywordIndex.build(default_registry(), settings.shortcodes)
    with connect(autocommit=True) as conn:
        audit.record(conn, cli_operator(), "search",
                     *timeline.asked(query, settings.key(), settings.regions.values()))
        items = timeline.timelines(conn, index, settings.key(), query, settings.regions.values())
    click.echo(json.dumps(items, ensure_ascii=False, indent=2) if as_json
               else timeline.render(items))
