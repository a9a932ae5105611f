"""`govsms purge`: personal data past a retention period removed now (beat does it nightly)."""

from __future__ import annotations

import datetime as dt

import click

from workers.cli.common import age, connect
from workers.settings import load_settings


@click.command()
@click.option("--older-than", "older_than", default=None, metavar="AGE",
              help="Purge messages older than this (30d, 12h, 0s); default "
                   "GOVSMS_RETENTION_DAYS")
@click.option("--dry-run", is_flag=True, help="Count what would be purged, change nothing")
def purge(older_than: str | None, dry_run: bool) -> None:
    """Remove the texts and phone numbers of old messages, keeping their counts."""
    from workers import redis_urls, retention

    settings = load_settings()
    if older_than is None and settings.retention_days <= 0:
        raise click.ClickException("GOVSMS_RETENTION_DAYS is 0 (kept for ever): give "
                                   "--older-than")
    limit = age(older_than) if older_than else dt.timedelta(days=settings.retention_days)
    before = dt.datetime.now(dt.UTC) - limit
    with connect(autocommit=True) as conn:
        due = retention.due(conn, before)
        click.echo(f"older than {before:%Y-%m-%d %H:%M:%S} UTC: {due.inbound:,} inbound "
                   f"messages and {due.outbound:,} SMS to purge, {due.in_flight:,} still in "
                   "flight (left for now); with one-time codes and replay items")
        if dry_run:
            return
        client = redis_urls.client(settings.redis_url) if settings.redis_url else None
        with click.progressbar(length=due.inbound + due.outbound, label="purging",
                               show_pos=True) as bar:
            done = retention.purge(conn, retention.digest_key(settings.key()), before,
                                   client=client, progress=bar.update)
    click.echo(f"purged {done.inbound:,} inbound, {done.outbound:,} SMS, {done.codes:,} "
               f"one-time codes and failed checks, {done.replay_items:,} replay items, "
               f"{done.callbacks:,} callbacks, {done.redis_keys:,} Redis keys")
