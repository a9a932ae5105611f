"""`govsms run`, `ingest`, `smpp-ingest`, `flower` and `console`: the commands that start the
processes."""

from __future__ import annotations

import sys

import click

from workers import logs
from workers.cli.common import database_url
from workers.settings import Settings, load_settings


@click.command()
@click.option("--demo", is_flag=True, help="Load the demo dataset when the registries are empty")
def run(demo: bool) -> None:
    """Run everything: embedded Redis/PostgreSQL if none configured, ingest, workers, beat."""
    from workers.local.embedded import EmbeddedError
    from workers.local.run import RunError
    from workers.local.run import run as run_all

    settings = Settings()
    logs.configure(settings.log_level, "text")  # a terminal; the processes it starts log JSON
    try:
        code = run_all(settings, demo=demo)
    except (RunError, EmbeddedError) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(code)


@click.command()
def ingest() -> None:
    """Serve the ingest HTTP endpoints (what `govsms run` starts)."""
    import uvicorn

    from workers.ingest.door import server_config
    from workers.ingest.http import create_app

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    uvicorn.Server(server_config(settings, create_app(settings))).run()


@click.command("smpp-ingest")
def smpp_ingest() -> None:
    """Take MOs and delivery receipts from the SMSC over SMPP (GOVSMS_SMPP_RECEIVER)."""
    import psycopg

    from workers.ingest.smpp import run as receive

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if not settings.smpp_receiver:
        raise click.ClickException("set GOVSMS_SMPP_RECEIVER=smpp://ID:PW@HOST:PORT?mode=receiver")
    try:
        receive(settings, database_url())
    except psycopg.Error as error:
        raise click.ClickException(f"message store: {error}") from error


@click.command()
def flower() -> None:
    """Celery Flower behind a password (GOVSMS_FLOWER_USER / GOVSMS_FLOWER_PASSWORD), for
    monitoring; its control routes answer 403 unless GOVSMS_FLOWER_CONTROL=true."""
    from workers.flower import serve

    serve(load_settings())


@click.command()
def console() -> None:
    """The operators' console (GOVSMS_CONSOLE_HOST:GOVSMS_CONSOLE_PORT, 127.0.0.1:8090): sign
    in as an operator (`govsms operator add NAME`), search, dead letters, audit."""
    import uvicorn

    from workers.console.app import create_app
    from workers.ingest.door import protocol_class

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if not settings.redis_url or not settings.database_url:
        raise click.ClickException("no gateway to watch: start `govsms run`, or set "
                                   "GOVSMS_REDIS_URL and GOVSMS_DATABASE_URL")
    # No access log (a page's path holds message ids, enough); headers must come in time.
    uvicorn.Server(uvicorn.Config(
        create_app(settings), host=settings.console_host, port=settings.console_port,
        access_log=False, log_config=None, ws="none", proxy_headers=False,
        http=protocol_class(settings.http_header_timeout_s, 16 * 1024))).run()
