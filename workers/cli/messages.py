"""`govsms send`, `status`, `dead-letters`, `report` and `accounts`: messages in, and the
operator's view of what became of them."""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid

import click
import httpx

from workers.cli.common import cli_operator, connect
from workers.settings import load_settings

SEALED_NOTE = "(sent: the reply carries a password or code, shown on the citizen's phone only)"
# Why a message got no reply (workers/suppression.py), and the setting behind it.
SUPPRESSED = {
    "repeat": "this phone sent the same text within GOVSMS_REPEAT_WINDOW_S, answered once",
    "flood": "this phone is past GOVSMS_FLOOD_LIMIT answered messages in its window",
    "sender_alphanumeric": "the sender is a name, not a phone number",
    "sender_short_code": "the sender is a short code, not a phone number",
    "sender_own_code": "the sender is one of this gateway's short codes",
    "sender_malformed": "the sender is not a phone number",
}


@click.command()
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
            answer = client.get(f"/v1/messages/inbound/{inbound_id}/replies",
                                params={"id": external_id, "smsc": "cli"}).json()
            if answer.get("suppressed"):
                raise click.ClickException(f"no reply: {SUPPRESSED[answer['suppressed']]} "
                                           f"(suppressed: {answer['suppressed']})")
            replies = answer["replies"]
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


@click.command()
def status() -> None:
    """Queue depths, workers alive, SLA compliance over the last hour, open dead letters,
    MOs suppressed over the last hour by reason, each API client's day and volume."""
    import psycopg
    import redis

    from workers import redis_urls
    from workers import status as ops
    from workers.app import create_app

    settings = load_settings()
    if not settings.redis_url or not settings.database_url:
        raise click.ClickException(ops.NO_GATEWAY.format(data_dir=settings.data_dir))
    client = redis_urls.client(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
        with connect(connect_timeout=5) as conn:
            now = ops.picture(conn, client, create_app(settings), settings,
                              dt.datetime.now(dt.UTC))
    except (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise click.ClickException(f"the gateway's servers do not answer ({first}); "
                                   + ops.NO_GATEWAY.format(data_dir=settings.data_dir)) from None
    click.echo("queues:")
    for queue, depth in now.queues.items():
        click.echo(f"  {queue:<28}{depth:>8}")
    click.echo(f"workers alive: {len(now.workers)}" + "".join(f"\n  {n}" for n in now.workers))
    share = "no SMS sent" if now.in_time_share is None else f"{100 * now.in_time_share:.2f}%"
    click.echo(f"SLA, last hour: {share} of {now.sent} sent within their deadline; "
               f"{now.overdue} queued past it")
    click.echo(f"dead letters not replayed: {now.dead_letters}")
    last = now.sent_per_minute[-1][1] if now.sent_per_minute else 0
    click.echo(f"sent per minute, last hour: {sum(n for _, n in now.sent_per_minute) / 60:.1f} "
               f"on average, {last} in the latest minute with any")
    reasons = ", ".join(f"{reason} {n}" for reason, n in now.suppressed)
    click.echo(f"suppressed, last hour: {sum(n for _, n in now.suppressed)}"
               + (f" ({reasons})" if reasons else ""))
    for f in now.clients:
        refused = ", ".join(f"{reason} {n}" for reason, n in sorted(f.refused.items()))
        click.echo(f"client {f.name}: {f.messages_today:,} of {f.max_messages:,} messages and "
                   f"{f.parts_today:,} of {f.max_parts:,} parts today; refused: "
                   f"{refused or 'none'}; last hour {f.last_hour:,} parts, "
                   f"{f.volume_ratio:.1f}x its usual"
                   + ("  ALERT: far above its usual rate" if f.volume_jump else ""))


@click.group("dead-letters")
def dead_letters() -> None:
    """Messages the pipeline gave up on: list, show, replay."""


@dead_letters.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed ones")
def dead_letters_list(include_replayed: bool) -> None:
    """One line per dead letter: id, when, task, inbound/outbound ids, reason."""
    from workers import messages

    with connect() as conn:
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
    from replies.masking import mask_digits
    from workers import messages

    with connect() as conn:
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
    from workers import audit
    from workers.app import create_app
    from workers.tasks import replay_dead_letters

    if replay_all == (dead_letter_id is not None):
        raise click.UsageError("give a dead letter id, or --all")
    celery = create_app(load_settings())
    with connect(autocommit=True) as conn:
        done = replay_dead_letters(celery, conn, dead_letter_id)
        if done is None:
            raise click.ClickException(f"no dead letter {dead_letter_id}")
        audit.record(conn, cli_operator(), "replay_all" if replay_all else "replay",
                     f"{done[0]} dead letters" if replay_all else f"dead letter {dead_letter_id}")
    if replay_all and not done[0]:
        click.echo("no open dead letters")
        return
    click.echo(f"replayed {done[0]} dead letters: {done[1]} messages received again, "
               f"{done[2]} SMS queued again")


@click.group()
def report() -> None:
    """Reports from the message store."""


@report.command("fees")
@click.option("--day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD")
@click.option("--shortcode", default="8188", show_default=True)
def report_fees(day: dt.datetime, shortcode: str) -> None:
    """MOs charged on a short code that day (in the tariff's time zone): count and total."""
    from workers import messages

    tariff = load_settings().tariffs.get(shortcode)
    if tariff is None:
        raise click.ClickException(f"no tariff for {shortcode} (GOVSMS_TARIFFS)")
    zone = dt.timezone(dt.timedelta(hours=tariff.utc_offset_hours))
    start = day.replace(tzinfo=zone)
    with connect() as conn:
        count, total, _ = messages.fees(conn, shortcode, start, start + dt.timedelta(days=1))
    click.echo(f"{day:%Y-%m-%d} {shortcode}: {count} messages, {total:,} {tariff.currency}")


@click.group("accounts")
def accounts_group() -> None:
    """The 8188 e-citizen accounts."""


@accounts_group.command("password-changed")
@click.argument("username")
def accounts_password_changed(username: str) -> None:
    """Record that USERNAME set a password of their own (rotation stops)."""
    from services.stores import accounts

    with connect() as conn:
        if not accounts.password_changed(conn, username, dt.datetime.now(dt.UTC)):
            raise click.ClickException(f"no account {username}")
    click.echo(f"{username}: password change recorded")
