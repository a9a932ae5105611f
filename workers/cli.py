"""The `govsms` command."""

from __future__ import annotations

import json
import sys
import time
import uuid

import click
import httpx

from workers import logs
from workers.settings import Settings, load_settings


@click.group()
def main() -> None:
    """govsms: an SMS gateway for e-Government services."""


@main.command()
def run() -> None:
    """Run everything: embedded Redis/PostgreSQL if none configured, ingest, workers, beat."""
    from workers.run import run as run_all

    settings = Settings()
    logs.configure(settings.log_level)
    sys.exit(run_all(settings))


@main.command()
def ingest() -> None:
    """Serve the ingest HTTP endpoints (what `govsms run` starts)."""
    import uvicorn

    from workers.ingest import create_app

    settings = load_settings()
    logs.configure(settings.log_level)
    # No access log: Kannel's query strings carry phone numbers and the bridge token.
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port,
                access_log=False, log_config=None)


@main.group()
def db() -> None:
    """The database."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the migrations not yet applied."""
    from workers import db as database

    settings = load_settings()
    if not settings.database_url:
        raise click.ClickException("no database: set GOVSMS_DATABASE_URL or start `govsms run`")
    applied = database.migrate(settings.database_url)
    click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")


@main.command()
@click.option("--from", "sender", required=True, help="The citizen's phone number")
@click.option("--to", "shortcode", required=True, help="The short code")
@click.option("--wait", type=float, default=None, help="Wait this many seconds for the reply")
@click.argument("text")
def send(sender: str, shortcode: str, wait: float | None, text: str) -> None:
    """Send TEXT through the ingest endpoint exactly as the SMSC bridge would."""
    settings = load_settings()
    headers = {"X-Bridge-Token": settings.secret()}
    with httpx.Client(base_url=settings.ingest_url, headers=headers, timeout=10) as client:
        try:
            inbound_id = _post_inbound(client, sender, shortcode, text)
        except httpx.HTTPError as error:
            raise click.ClickException(f"cannot reach ingest at {settings.ingest_url}: {error}")
        if wait is None:
            click.echo(f"accepted as inbound {inbound_id}")
            return
        printed: set[int] = set()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            replies = client.get(f"/v1/messages/inbound/{inbound_id}/replies").json()["replies"]
            for reply in replies:
                if reply["state"] == "sent" and reply["id"] not in printed:
                    printed.add(reply["id"])
                    click.echo(reply["text"])
            if replies and len(printed) == len(replies):
                return
            time.sleep(0.2)
    click.echo(f"no reply within {wait:g} s", err=True)
    sys.exit(1)


def _post_inbound(client: httpx.Client, sender: str, shortcode: str, text: str) -> int:
    response = client.post("/v1/messages/inbound", json={
        "from": sender, "to": shortcode, "text": text, "id": uuid.uuid4().hex, "smsc": "cli"})
    if response.status_code != 202:
        raise click.ClickException(f"ingest answered {response.status_code}: {response.text}")
    return int(response.json()["id"])


@main.command()
@click.option("--to", "shortcode", help="The short code the text was sent to")
@click.option("--jsonl", is_flag=True, help='Read {"to": ..., "text": ...} lines from stdin')
@click.argument("text", required=False)
def parse(shortcode: str | None, jsonl: bool, text: str | None) -> None:
    """Print what the parser makes of TEXT (or of each JSON line on stdin) as JSON."""
    from parsers import KeywordIndex
    from services.registry import default_registry

    index = KeywordIndex.build(default_registry(), load_settings().shortcodes)
    if not jsonl:
        if shortcode is None or text is None:
            raise click.UsageError("give --to SHORTCODE TEXT, or --jsonl")
        click.echo(json.dumps(index.parse(shortcode, text).as_dict(), ensure_ascii=False))
        return
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            result = index.parse(str(item["to"]), str(item["text"])).as_dict()
        except (ValueError, KeyError, TypeError) as error:
            result = {"service": None, "error": "bad_input", "line": number,
                      "detail": type(error).__name__}
        click.echo(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
