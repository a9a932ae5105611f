"""`govsms export` and `govsms replay`: message logs out, and replayed through the services."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from workers.cli.common import connect
from workers.settings import load_settings

if TYPE_CHECKING:
    from workers import replay as rp

DEFAULT_SEND_RATE = 10.0
BATCH_SIZE = 50  # workers.replay.driving.BATCH_SIZE, not imported here: `govsms` starts fast


def _instant(value: str, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 date or time: {value!r}",
                                 param_hint=name) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@click.command("export")
@click.option("--since", required=True, help="ISO 8601 start, included (UTC if no zone)")
@click.option("--until", required=True, help="ISO 8601 end, excluded (UTC if no zone)")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout")
def export(since: str, until: str, out: str | None) -> None:
    """Inbound messages received in [SINCE, UNTIL) with their replies, as JSON Lines.

    A reply that carries a password or code is exported as null with "sealed": true.
    """
    from workers import replay as rp

    start, end = _instant(since, "--since"), _instant(until, "--until")
    if end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")
    count = 0
    with connect() as conn, _output(out) as f:
        for message in rp.export(conn, start, end):
            f.write(json.dumps(message, ensure_ascii=False) + "\n")
            count += 1
    click.echo(f"exported {count} messages", err=True)


class _output:
    """A file to write, or stdout (left open)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file: IO[str] = sys.stdout

    def __enter__(self) -> IO[str]:
        if self.path:
            self.file = open(self.path, "w", encoding="utf-8")  # closed in __exit__
        return self.file

    def __exit__(self, *_: object) -> None:
        if self.path:
            self.file.close()
        else:
            self.file.flush()


@click.command("replay")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", "mode", flag_value="dry-run",
              help="Answer each message against the current stores; send and record nothing "
                   "(the default)")
@click.option("--compare", "mode", flag_value="compare",
              help="As --dry-run, then compare the new replies with those the log recorded")
@click.option("--send", "mode", flag_value="send",
              help="Really send: each message becomes a new inbound message, answered and "
                   "delivered once")
@click.option("--rate", type=click.FloatRange(min=0.1),
              help=f"Messages per second (--send: default {DEFAULT_SEND_RATE:g}; else unpaced)")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write the report (JSON Lines, one line per message) here; --dry-run "
                   "without it writes the report to stdout")
@click.option("--resume", "resume", type=int, metavar="RUN_ID",
              help="Continue a stopped run; its done messages are not redone")
@click.option("--batch-size", type=click.IntRange(1, 500), default=BATCH_SIZE,
              show_default=True, help="Messages per task")
def replay(files: tuple[str, ...], mode: str | None, rate: float | None, report: str | None,
           resume: int | None, batch_size: int) -> None:
    """Replay message logs (our JSON Lines export, CSV, Kannel access logs) through the services.

    The run is checkpointed in PostgreSQL and runs on the `replay` queue, which its
    own worker consumes; Ctrl-C stops it, and --resume RUN_ID continues it.
    """
    from workers import replay as rp
    from workers.app import create_app
    from workers.replay import task

    if resume is None and not files:
        raise click.UsageError("give log files to replay, or --resume RUN_ID")
    settings = load_settings()
    celery = create_app(settings)
    task.ensure_queue(celery)
    if not task.consumers(celery):
        raise click.ClickException(
            "no worker consumes the replay queue; start one, e.g. `celery -A workers.celery_app "
            "worker -Q replay,callbacks -n replay@%h --pool threads --concurrency 2`")
    with connect(autocommit=True) as conn:
        if resume is not None:
            run = rp.get_run(conn, resume)
            if run is None:
                raise click.ClickException(f"no replay run {resume}")
            if mode is not None and mode != run.mode:
                raise click.UsageError(f"run {resume} is a {run.mode} run, not {mode}")
            if files:
                click.echo("the files are ignored: a resumed run replays what it recorded",
                           err=True)
            run_id, mode = run.id, run.mode
            rate = rate if rate is not None else run.rate
        else:
            mode = mode or "dry-run"
            if mode == "send" and rate is None:
                rate = DEFAULT_SEND_RATE
            run_id = _new_run(conn, [Path(f) for f in files], mode, rate, settings.regions)
        rp.set_state(conn, run_id, "running", rate)
        before = rp.progress(conn, run_id)
        click.echo(f"replay run {run_id} ({mode})" + (f" at {rate:g} messages/s" if rate else ""),
                   err=True)
        started = time.monotonic()
        try:
            final = _drive(conn, celery, run_id, mode, rate, batch_size)
        except KeyboardInterrupt:
            rp.set_state(conn, run_id, "stopped")
            state = rp.progress(conn, run_id)
            click.echo(f"\nstopped run {run_id} at {state.done} of {state.total}; continue with "
                       f"`govsms replay --resume {run_id}`", err=True)
            sys.exit(130)
        rp.set_state(conn, run_id, "finished")
        _results(conn, run_id, mode, final, report)
        elapsed = time.monotonic() - started
        click.echo(f"{final.total - before.done} messages in {elapsed:.1f} s "
                   f"({(final.total - before.done) / max(elapsed, 1e-9):.0f} messages/s)", err=True)


def _new_run(conn: object, paths: list[Path], mode: str, rate: float | None,
             regions: dict[str, str]) -> int:
    from workers import replay as rp

    parsed = []
    for path in paths:
        try:
            found = rp.read(path)
        except rp.ReplayError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"{path}: {found.format}, {len(found.messages)} messages"
                   + (f", {found.ignored} other lines" if found.ignored else "")
                   + (f", {len(found.skipped)} lines skipped" if found.skipped else ""), err=True)
        for line, reason in found.skipped[:5]:
            click.echo(f"  line {line}: {reason}", err=True)
        parsed.append(found)
    if not any(p.messages for p in parsed):
        raise click.ClickException("no messages to replay")
    run_id, duplicates = rp.create_run(conn, mode, rate, parsed, regions)  # type: ignore[arg-type]
    if duplicates:
        click.echo(f"{duplicates} messages repeated in the input are replayed once", err=True)
    return run_id


def _drive(conn: object, celery: object, run_id: int, mode: str, rate: float | None,
           batch_size: int) -> rp.Progress:
    from tqdm import tqdm

    from workers import replay as rp
    from workers.replay import task

    state = rp.progress(conn, run_id)  # type: ignore[arg-type]
    with tqdm(total=state.total, initial=state.done, unit="msg", desc=f"run {run_id} {mode}",
              file=sys.stderr, dynamic_ncols=True, mininterval=0.5) as bar:

        def show(now: rp.Progress) -> None:
            settled = now.done + now.failed
            if settled > bar.n:
                bar.update(settled - bar.n)
            if now.failed:
                bar.set_postfix(failed=now.failed, refresh=False)

        return rp.drive(conn, run_id,  # type: ignore[arg-type]
                        lambda ids: task.send_batch(celery, run_id, ids),  # type: ignore[arg-type]
                        batch_size=batch_size, rate=rate, on_progress=show)


def _results(conn: object, run_id: int, mode: str, final: rp.Progress,
             report: str | None) -> None:
    from workers import replay as rp

    rows = list(rp.report_rows(conn, run_id))  # type: ignore[arg-type]
    if report or mode == "dry-run":
        with _output(report) as f:
            for row in rows:
                f.write(json.dumps(row.as_json(mode), ensure_ascii=False) + "\n")
    if mode == "compare":
        click.echo(f"replay run {run_id}: compared {final.total} messages")
        click.echo(rp.compare(rows).render())
    elif mode == "send":
        already = sum(r.outcome == "already_sent" for r in rows)
        click.echo(f"replay run {run_id}: {final.done - already} sent, {already} already sent "
                   f"by an earlier run, {final.failed} failed", err=True)
    else:
        click.echo(f"replay run {run_id}: {final.done} answered, {final.failed} failed"
                   + (f"; report in {report}" if report else ""), err=True)
    for row in rows:
        if row.state == "failed":
            click.echo(f"  failed: {row.file}:{row.line}: {row.error}", err=True)
            break
