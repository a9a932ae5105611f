"""`govsms db`: migrations, registry extracts and the demo dataset."""

from __future__ import annotations

import json

import click

from workers.cli.common import connect, database_url
from workers.settings import load_settings


@click.group()
def db() -> None:
    """The database."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the migrations not yet applied (on GOVSMS_DATABASE_MIGRATE_URL when set)."""
    from workers import db as database

    settings = load_settings()
    applied = database.migrate(settings.database_migrate_url or database_url(settings))
    click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")


@db.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def db_load(path: str) -> None:
    """Upsert a registry extract (JSON); a malformed row loads nothing of the file."""
    with open(path, encoding="utf-8") as f:
        _load(f.read(), path)


@db.command("seed-demo")
@click.option("--persons", default=20_000, show_default=True, help="Synthetic people to make")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the extract here")
def db_seed_demo(persons: int, out: str | None) -> None:
    """Load the synthetic demo dataset and its personas (README, "Demo")."""
    from workers.local import demo

    text = json.dumps(demo.dataset(persons), default=str, ensure_ascii=False, indent=0)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    _load(text, "demo dataset")


def _load(text: str, name: str) -> None:
    from workers import extracts

    try:
        sections = extracts.validate(text)
    except extracts.ExtractError as error:
        raise click.ClickException(f"{name}: {error}; nothing loaded") from None
    with connect() as conn:
        counts = extracts.load(conn, sections)
    click.echo(f"{name}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "no rows"))
