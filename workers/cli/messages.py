"""The `govsms` command."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid

import click
import httpx

from workers import logs
from workers.replay_cli import export, replay
from workers.settings import Settings, load_settings

SEALED_NOTE = "(sent: the reply carries a password or code, shown on the citizen's phone only)"


@click.group()
def main() -> None:
    """govsms: an SMS gateway for e-Government services."""


@main.command()
@click.option("--demo", is_flag=True, help="Load the demo dataset when the registries are empty")
def run(demo: bool) -> None:
    """Run everything: embedded Redis/PostgreSQL if none configured, ingest, workers, beat."""
    from workers.embedded import EmbeddedError
    from workers.run import RunError
    from workers.run import run as run_all

    settings = Settings()
    logs.configure(settings.log_level, "text")  # a terminal; the processes it starts log JSON
    try:
        code = run_all(settings, demo=demo)
    except (RunError, EmbeddedError) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(code)


@main.command()
def ingest() -> None:
    """Serve the ingest HTTP endpoints (what `govsms run` starts)."""
    import uvicorn

    from workers.door import server_config
    from workers.ingest import create_app

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    uvicorn.Server(server_config(settings, create_app(settings))).run()


@main.command("smpp-ingest")
def smpp_ingest() -> None:
    """Take MOs and delivery receipts from the SMSC over SMPP (GOVSMS_SMPP_RECEIVER)."""
    import psycopg

    from workers import db as database
    from workers import messages
    from workers.celery_app import create_app
    from workers.ingest import InboundSms, Ingest
    from workers.smpp_ingest import serve

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if not settings.smpp_receiver:
        raise click.ClickException("set GOVSMS_SMPP_RECEIVER=smpp://ID:PW@HOST:PORT?mode=receiver")
    pool = database.create_pool(_database_url(), statement_timeout_ms=settings.statement_timeout_ms,
                                name="smpp-ingest")
    ingest = Ingest(settings, pool, create_app(settings))

    def on_message(sender: str, shortcode: str, text: str, external_id: str) -> None:
        # Unavailable propagates: the SMSC gets an error and delivers the message again.
        ingest.accept(InboundSms.model_validate({"from": sender, "to": shortcode, "text": text,
                                                 "id": external_id, "smsc": "smpp"}))

    def on_receipt(message_id: str, state: str) -> None:
        with pool.connection() as conn:
            messages.record_receipt(conn, message_id, state)

    def on_dead_letter(reason: str) -> None:
        with pool.connection() as conn:
            messages.add_dead_letter(conn, task="smpp-ingest", reason=reason)

    try:
        serve(settings.smpp_receiver, on_message, on_receipt, on_dead_letter=on_dead_letter)
    except psycopg.Error as error:
        raise click.ClickException(f"message store: {error}") from error
    finally:
        pool.close()


@main.group()
def db() -> None:
    """The database."""


def _database_url() -> str:
    url = load_settings().database_url
    if not url:
        raise click.ClickException("no database: set GOVSMS_DATABASE_URL or start `govsms run`")
    return url


@db.command("migrate")
def db_migrate() -> None:
    """Apply the migrations not yet applied."""
    from workers import db as database

    applied = database.migrate(_database_url())
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
    from workers import demo

    text = json.dumps(demo.dataset(persons), default=str, ensure_ascii=False, indent=0)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    _load(text, "demo dataset")


def _load(text: str, name: str) -> None:
    import psycopg

    from workers import extracts

    try:
        sections = extracts.validate(text)
    except extracts.ExtractError as error:
        raise click.ClickException(f"{name}: {error}; nothing loaded") from None
    with psycopg.connect(_database_url()) as conn:
        counts = extracts.load(conn, sections)
    click.echo(f"{name}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "no rows"))


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
            external_id = uuid.uuid4().hex
            inbound_id = _post_inbound(client, sender, shortcode, text, external_id)
        except httpx.HTTPError as error:
            raise click.ClickException(f"cannot reach ingest at {settings.ingest_url}: {error}")
        if wait is None:
            click.echo(f"accepted as inbound {inbound_id}")
            return
        printed: set[int] = set()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            replies = client.get(f"/v1/messages/inbound/{inbound_id}/replies",
                                 params={"id": external_id, "smsc": "cli"}).json()["replies"]
            for reply in replies:
                if reply["state"] == "sent" and reply["id"] not in printed:
                    printed.add(reply["id"])
                    click.echo(SEALED_NOTE if reply["sealed"] else reply["text"])
            if replies and len(printed) == len(replies):
                return
            time.sleep(0.2)
    click.echo(f"no reply within {wait:g} s", err=True)
    sys.exit(1)


def _post_inbound(client: httpx.Client, sender: str, shortcode: str, text: str,
                  external_id: str) -> int:
    response = client.post("/v1/messages/inbound", json={
        "from": sender, "to": shortcode, "text": text, "id": external_id, "smsc": "cli"})
    if response.status_code != 202:
        raise click.ClickException(f"ingest answered {response.status_code}: {response.text}")
    return int(response.json()["id"])


@main.command()
def flower() -> None:
    """Celery Flower behind a password (GOVSMS_FLOWER_USER / GOVSMS_FLOWER_PASSWORD), for
    monitoring; its control routes answer 403 unless GOVSMS_FLOWER_CONTROL=true."""
    from workers.flower import serve

    serve(load_settings())


@main.command()
def status() -> None:
    """Queue depths, workers alive, SLA compliance over the last hour, open dead letters."""
    import psycopg
    import redis

    from workers import status as ops
    from workers.celery_app import all_queues, create_app

    settings = load_settings()
    if not settings.redis_url or not settings.database_url:
        raise click.ClickException(ops.NO_GATEWAY.format(data_dir=settings.data_dir))
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
    now = dt.datetime.now(dt.UTC)
    try:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            sent, in_time, overdue = ops.sla(conn, now - dt.timedelta(hours=1), now)
            dead = ops.open_dead_letters(conn)
        client.ping()
    except (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise click.ClickException(f"the gateway's servers do not answer ({first}); "
                                   + ops.NO_GATEWAY.format(data_dir=settings.data_dir)) from None
    click.echo("queues:")
    for queue, depth in ops.queue_depths(client, all_queues(settings)).items():
        click.echo(f"  {queue:<28}{depth:>8}")
    alive = ops.workers_alive(create_app(settings))
    click.echo(f"workers alive: {len(alive)}" + "".join(f"\n  {name}" for name in alive))
    share = f"{100 * in_time / sent:.2f}%" if sent else "no SMS sent"
    click.echo(f"SLA, last hour: {share} of {sent} sent within their deadline; "
               f"{overdue} queued past it")
    click.echo(f"dead letters not replayed: {dead}")


@main.group("dead-letters")
def dead_letters() -> None:
    """Messages the pipeline gave up on: list, show, replay."""


@dead_letters.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed ones")
def dead_letters_list(include_replayed: bool) -> None:
    """One line per dead letter: id, when, task, inbound/outbound ids, reason."""
    import psycopg

    from workers import messages

    with psycopg.connect(_database_url()) as conn:
        letters = messages.dead_letters(conn, include_replayed=include_replayed)
    for d in letters:
        replayed = f" (replayed {d.replayed_at:%Y-%m-%d %H:%M})" if d.replayed_at else ""
        click.echo(f"{d.id:>6}  {d.created_at:%Y-%m-%d %H:%M:%S}  {d.task:<18} "
                   f"in={d.inbound_id or '-'} out={d.outbound_id or '-'}  {d.reason}{replayed}")
    click.echo(f"{len(letters)} dead letters")


@dead_letters.command("show")
@click.argument("dead_letter_id", type=int)
def dead_letters_show(dead_letter_id: int) -> None:
    """A dead letter with its message, phone numbers masked."""
    import psycopg

    from replies.masking import mask_digits
    from workers import messages

    with psycopg.connect(_database_url()) as conn:
        found = messages.dead_letters(conn, dead_letter_id=dead_letter_id)
        if not found:
            raise click.ClickException(f"no dead letter {dead_letter_id}")
        letter = found[0]
        click.echo(f"dead letter {letter.id}: {letter.task}: {letter.reason}")
        click.echo(f"  created {letter.created_at:%Y-%m-%d %H:%M:%S %Z}; replayed "
                   f"{letter.replayed_at or 'no'}")
        for table, message_id in (("inbound", letter.inbound_id),
                                  ("outbound", letter.outbound_id)):
            if message_id is None:
                continue
            row = messages.describe(conn, table, message_id)
            click.echo(f"  {table} {message_id}: " + ", ".join(
                f"{k}={mask_digits(str(v))}" for k, v in row.items()))


@dead_letters.command("replay")
@click.argument("dead_letter_id", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open dead letter")
def dead_letters_replay(dead_letter_id: int | None, replay_all: bool) -> None:
    """Queue a dead letter (or all open ones) again through the pipeline."""
    import psycopg

    from workers import messages
    from workers.celery_app import INBOUND, OUTBOUND, create_app
    from workers.tasks import DELIVER, DISPATCH

    if replay_all == (dead_letter_id is not None):
        raise click.UsageError("give a dead letter id, or --all")
    settings = load_settings()
    celery = create_app(settings)
    queued = {"inbound": [], "outbound": []}
    with psycopg.connect(_database_url()) as conn:
        letters = messages.dead_letters(conn, dead_letter_id=dead_letter_id)
        if not letters and replay_all:
            click.echo("no open dead letters")
            return
        if not letters:
            raise click.ClickException(f"no dead letter {dead_letter_id}")
        for letter in letters:
            replayed = messages.replay_dead_letter(conn, letter)
            if replayed:
                queued[replayed[0]].append(replayed[1])
        conn.commit()
    if queued["inbound"]:
        celery.send_task(DISPATCH, args=[queued["inbound"]], queue=INBOUND)
    if queued["outbound"]:
        celery.send_task(DELIVER, args=[queued["outbound"]], queue=OUTBOUND)
    click.echo(f"replayed {len(letters)} dead letters: {len(queued['inbound'])} messages "
               f"received again, {len(queued['outbound'])} SMS queued again")


@main.group()
def report() -> None:
    """Reports from the message store."""


@report.command("fees")
@click.option("--day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD")
@click.option("--shortcode", default="8188", show_default=True)
def report_fees(day: dt.datetime, shortcode: str) -> None:
    """MOs charged on a short code that day (in the tariff's time zone): count and total."""
    import psycopg

    from workers import messages

    tariff = load_settings().tariffs.get(shortcode)
    if tariff is None:
        raise click.ClickException(f"no tariff for {shortcode} (GOVSMS_TARIFFS)")
    zone = dt.timezone(dt.timedelta(hours=tariff.utc_offset_hours))
    start = day.replace(tzinfo=zone)
    with psycopg.connect(_database_url()) as conn:
        count, total, _ = messages.fees(conn, shortcode, start, start + dt.timedelta(days=1))
    click.echo(f"{day:%Y-%m-%d} {shortcode}: {count} messages, {total:,} {tariff.currency}")


@main.group("accounts")
def accounts_group() -> None:
    """The 8188 e-citizen accounts."""


@accounts_group.command("password-changed")
@click.argument("username")
def accounts_password_changed(username: str) -> None:
    """Record that USERNAME set a password of their own (rotation stops)."""
    import psycopg

    from services.stores import accounts

    with psycopg.connect(_database_url()) as conn:
        if not accounts.password_changed(conn, username, dt.datetime.now(dt.UTC)):
            raise click.ClickException(f"no account {username}")
    click.echo(f"{username}: password change recorded")


@main.command()
@click.option("--seconds", default=5.0, show_default=True, help="How long to measure each figure")
@click.option("--out", default="docs", show_default=True, type=click.Path(file_okay=False))
def bench(seconds: float, out: str) -> None:
    """Measure, print and write docs/benchmarks.md and docs/benchmarks.json."""
    from pathlib import Path

    from workers.bench import run as run_bench

    run_bench(seconds, Path(out))


@main.command()
@click.option("--out", default="docs/dashboard.png", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--seconds", default=180.0, show_default=True,
              help="How long to run the gateway under load, when no --prometheus-url is given")
@click.option("--prometheus-url", help="Draw from this Prometheus (scraping the gateway) instead")
@click.option("--since", default=3600.0, show_default=True,
              help="With --prometheus-url: how many seconds back from now to draw")
@click.option("--scrape-interval", default=30.0, show_default=True,
              help="With --prometheus-url: its scrape interval (sets $__rate_interval)")
def dashboard(out: str, seconds: float, prometheus_url: str | None, since: float,
              scrape_interval: float) -> None:
    """Draw the Grafana dashboard (deploy/grafana) to a PNG from Prometheus' data."""
    from pathlib import Path

    from workers import dashboard as board

    if prometheus_url:
        drawn = board.render(board.Prometheus(prometheus_url, scrape_interval),
                             time.time() - since, time.time(), Path(out))
    else:
        drawn = board.capture(Path(out), seconds)
    for panel in drawn:
        if panel.kind != "row":
            click.echo(f"{panel.title:<42}{len(panel.series):>3} series")
    click.echo(f"written: {out}")


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


main.add_command(export)
main.add_command(replay)


if __name__ == "__main__":
    main()
