"""What the `govsms` commands share: the message store's URL, or a usage error without one;
an age as operators write it; who the audit says asked."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from typing import TYPE_CHECKING, Any

import click

from workers.settings import Settings, load_settings

if TYPE_CHECKING:
    import psycopg


def connect(**kwargs: Any) -> psycopg.Connection:
    """A connection to the message store (`database_url`), as the settings say to reach it."""
    from workers import db

    settings = load_settings()
    return db.connect(database_url(settings),
                      transaction_pooler=settings.database_transaction_pooler, **kwargs)


def database_url(settings: Settings | None = None) -> str:
    """The message store's URL from the settings (or a running `govsms run`)."""
    url = (settings or load_settings()).database_url
    if not url:
        raise click.ClickException("no database: set GOVSMS_DATABASE_URL or start `govsms run`")
    return url


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGE = re.compile(r"(\d+)([smhd])")


def age(value: str) -> dt.timedelta:
    """`30d`, `12h`, `90m`, `0s` -> a timedelta."""
    found = _AGE.fullmatch(value.strip())
    if found is None:
        raise click.BadParameter(f"{value!r}: a whole number and a unit, s m h or d (30d)")
    return dt.timedelta(seconds=int(found[1]) * _UNITS[found[2]])


def cli_operator() -> str:
    """Who runs this command, as the audit trail names them: `cli:` and the system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return f"cli:uid {os.getuid()}"
