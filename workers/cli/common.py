"""What the `govsms` commands share: the message store's URL, or a usage error without one."""

from __future__ import annotations

import click

from workers.settings import load_settings


def database_url() -> str:
    """The message store's URL from the settings (or a running `govsms run`)."""
    url = load_settings().database_url
    if not url:
        raise click.ClickException("no database: set GOVSMS_DATABASE_URL or start `govsms run`")
    return url
