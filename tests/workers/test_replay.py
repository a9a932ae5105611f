"""Batch replay (workers/replay/, workers/cli/replay.py) on the real PostgreSQL and Redis.

Parsing is table-driven per format (tests/workers/replay_samples/kannel_access.log is the
access log of a real bearerbox fed by fakesmsc). The plain functions run without
Celery; the commands run against a real worker for the `replay` queue and the
gateway's real outbound worker, both separate processes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tests.support.gateway import Gateway, gateway_settings, wait_for
from tests.support.keys import KEY, SECRET
from tests.support.personas import expected_text, load_personas
from tests.support.pipeline import make_pipeline
from tests.support.servers import claimed_redis_db
from workers import messages, pipeline
from workers import replay as rp
from workers.cli.replay import export, replay
from workers.local import demo
from workers.local.demo import every_row_in_every_keyword
from workers.local.gateway import processes

SAMPLES = Path(__file__).parent / "replay_samples"
NOT_FOUND = "Servis ne naiden. Isprav'te vash tekst."
VN_SENDERS = [f"+8490123{n:04d}" for n in range(4)]
REGISTRATIONS = [f"TK,Nguyen Van {name},12345678{n},0{n + 1}.02.1990"
                 for n, name in enumerate(("An", "Binh", "Chau", "Dung"))]
# A worker for the replay queue alone, as workers/local/gateway.py starts it. It uses
# the module's app (create_app(load_settings())): a second app in the process would share
# the pipeline's tasks with it (Celery warns of the duplicate names).
WORKER = ("from workers.replay import task as replay\n"
          "from workers.celery_app import app\n"
          "if replay.BATCH not in app.tasks:\n"
          "    replay.register(app)\n"
          "app.worker_main(['worker', '-Q', 'replay', '-n', 'replay@%h', '--pool', 'threads',\n"
          "                 '--concurrency', '2', '--without-gossip', '--without-mingle'])\n")

# ---------------------------------------------------------------- parsing

K = "2026-11-22 01:42:43 Receive SMS [SMSC:fake] [SVC:] [ACT:] [BINF:] [FID:] [META:] "


def _hex(text: str, codec: str) -> str:
    return text.encode(codec).hex().upper()


def _rx(msg: str, *, coding: int = 0, sender: str = "+77010000001", head: str = K,
        tail: str = " [udh:0:]") -> str:
    """A `Receive SMS` line: `msg` is what follows `[msg:` (LEN:TEXT) up to its `]`."""
    return (f"{head}[from:{sender}] [to:1414] [flags:-1:{coding}:-1:-1:-1] [msg:{msg}]{tail}")


OLD_HEAD = "2026-11-22 01:42:43 Receive SMS [SMSC:smpp1] [SVC:] [ACT:] [BINF:] [FID:] "
CLEAN_HEAD = "Receive SMS [SMSC:fake] [SVC:] [ACT:] [BINF:] [FID:] [META:] "
SENT = ("2026-11-22 01:42:47 Sent SMS [SMSC:fake] [SVC:u] [ACT:] [BINF:] [FID:] [META:] "
        "[from:1414] [to:+77010000001] [flags:-1:0:-1:-1:31] [msg:17:Servis ne naiden.] [udh:0:]")
DLR = ("2026-11-22 01:42:47 Receive DLR [SMSC:fake] [SVC:u] [ACT:] [BINF:] [FID:9350c3a0] "
       "[META:?orig_msg?dlr_mask=31&] [from:1414] [to:+77010000001] [flags:-1:-1:-1:-1:1] "
       "[msg:0:] [udh:0:]")
UCS2 = "Тұрғын үйге кезек"

# (case, line, (from, text) | "ignored" | "skipped")
KANNEL_LINES = [
    ("default format", _rx("5:hello"), ("+77010000001", "hello")),
    ("text with ] and fields in it", _rx("34:weird ] [to:9999] text [msg:3:abc]",
                                         sender="87010000002"),
     ("87010000002", "weird ] [to:9999] text [msg:3:abc]")),
    ("text ending in ]", _rx("4:ab]]"), ("+77010000001", "ab]]")),
    ("spaces kept", _rx("8: 4  x   "), ("+77010000001", " 4  x   ")),
    ("empty text", _rx("0:"), ("+77010000001", "")),
    ("UCS-2 in hex", _rx(f"34:{_hex(UCS2, 'utf-16-be')}", coding=2), ("+77010000001", UCS2)),
    ("8-bit in hex", _rx(f"3:{_hex('a]b', 'utf-8')}", coding=1), ("+77010000001", "a]b")),
    ("no META (Kannel before 1.5)", _rx("1:4", head=OLD_HEAD), ("+77010000001", "4")),
    ("no time (access-log-clean)", _rx("1:5", head=CLEAN_HEAD), ("+77010000001", "5")),
    ("no udh field", _rx("1:5", tail=""), ("+77010000001", "5")),
    ("CRLF", _rx("2:hi", tail=" [udh:0:]\r"), ("+77010000001", "hi")),
    ("LEN counting characters", _rx("6:Привет"), ("+77010000001", "Привет")),
    ("Sent SMS", SENT, "ignored"),
    ("Receive DLR", DLR, "ignored"),
    ("marker", "2026-11-22 01:42:39 Log begins", "ignored"),
    ("truncated", _rx("50:cut off", tail="")[:-1], "skipped"),
    ("LEN too short", _rx("3:hello"), "skipped"),
    ("no from", K + "[to:1414] [flags:-1:0:-1:-1:-1] [msg:5:hello] [udh:0:]", "skipped"),
]


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in KANNEL_LINES],
                         ids=[c[0] for c in KANNEL_LINES])
def test_kannel_access_log_lines(line, expected):
    parsed = rp.parse_kannel([line.encode()], "access.log")
    if expected == "ignored":
        assert (parsed.messages, parsed.skipped, parsed.ignored) == ([], [], 1)
    elif expected == "skipped":
        assert (parsed.messages, len(parsed.skipped)) == ([], 1)
    else:
        [m] = parsed.messages
        assert (m.sender, m.shortcode, m.text) == (expected[0], "1414", expected[1])


def test_a_real_bearerbox_access_log():
    parsed = rp.read(SAMPLES / "kannel_access.log")
    assert parsed.format == "kannel"
    assert (len(parsed.messages), parsed.skipped, parsed.ignored) == (7, [], 5)
    assert [m.text for m in parsed.messages] == [
        "hello", "8 777AAA02", "weird ] [to:9999] text [msg:3:abc]", "Техосмотр 123 ABC 01",
        "Тұрғын үйге кезек", "TK,Nguyen Van An,123456789,01.02.1990", "  two  spaces  "]
    assert parsed.messages[0].received_at == dt.datetime(2026, 11, 22, 1, 42, 43, tzinfo=dt.UTC)
    assert parsed.messages[0].line == 2


def test_the_same_kannel_line_twice_is_two_messages_with_stable_keys():
    line = (K + "[from:+77010000001] [to:1414] [flags:-1:0:-1:-1:-1] [msg:1:4] [udh:0:]").encode()
    first = [m.key for m in rp.parse_kannel([line, line], "a.log").messages]
    again = [m.key for m in rp.parse_kannel([line, line], "b.log").messages]
    assert len(set(first)) == 2 and first == again


HEADER = "received_at,from,to,text\n"
CSV_CASES = [
    ("comma and quotes",
     HEADER + '2026-11-22T01:00:00Z,+77010000001,1414,"Техосмотр ""123"", ABC 01"\n',
     [(2, 'Техосмотр "123", ABC 01', None)]),
    ("reply column, a text over two lines",
     ("received_at,from,to,text,reply\n"
      '2026-11-22T01:00:00Z,+77010000001,1414,"two\nlines","a, b"\n'
      "2026-11-22T01:00:01Z,+77010000001,1414,4,\n"),
     [(2, "two\nlines", "a, b"), (4, "4", None)]),
    ("BOM, spaces in the header, an id column",
     "\ufeffreceived_at, from, to, text, id\n2026-11-22 01:00:00,+77010000001,1414,hello,x-1\n",
     [(2, "hello", None)]),
    ("a row without from is skipped",
     HEADER + "2026-11-22T01:00:00Z,,1414,x\n2026-11-22T01:00:00Z,+77010000001,1414,y\n",
     [(3, "y", None)]),
    ("a bad time is skipped", HEADER + "yesterday,+77010000001,1414,x\n", []),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CSV_CASES],
                         ids=[c[0] for c in CSV_CASES])
def test_csv_logs(text, expected):
    parsed = rp.parse_csv(text.removeprefix("\ufeff"), "log.csv")
    assert [(m.line, m.text, m.recorded) for m in parsed.messages] == expected


def test_the_sample_csv():
    parsed = rp.read(SAMPLES / "messages.csv")
    assert (parsed.format, parsed.skipped) == ("csv", [])
    assert [(m.line, m.text) for m in parsed.messages] == [
        (2, "hello"), (3, 'Техосмотр "123 ABC 01", please'), (4, "Ochered' na zhil'e"),
        (5, "two\nlines"), (7, "TK,Nguyen Van An,123456789,01.02.1990")]
    assert [m.recorded is not None for m in parsed.messages] == [True, False, True, True, False]
    assert parsed.messages[2].received_at == dt.datetime(2026, 11, 22, 1, 42, 45, tzinfo=dt.UTC)


def test_csv_keys_and_times():
    parsed = rp.parse_csv("received_at,from,to,text,id\n2026-11-22 06:00:00+05:00,+7701,1414,a,"
                          "x-1\n2026-11-22 01:00:00,+7701,1414,b,\n", "log.csv")
    first, second = parsed.messages
    assert first.key == "x-1" and second.key.startswith("csv:")
    assert first.received_at == second.received_at == dt.datetime(2026, 11, 22, 1, tzinfo=dt.UTC)


JSONL_CASES = [
    ("our export", {"received_at": "2026-11-22T01:00:00+00:00", "from": "+77010000001",
                    "to": "1414", "text": "4", "id": "abc", "source": "http", "service": None,
                    "reply": "r", "outcome": "found", "sealed": False},
     ("http:abc", "4", "r", False)),
    ("sealed reply", {"from": "+84901230000", "to": "8188", "text": "TK,A B,123456789,01.01.1990",
                      "id": "7", "reply": None, "sealed": True},
     ("7", "TK,A B,123456789,01.01.1990", None, True)),
    ("no id", {"from": "+77010000001", "to": "1414", "text": "hello"}, ("jsonl:", "hello", None,
                                                                         False)),
    ("missing text", {"from": "+77010000001", "to": "1414"}, None),
    ("not an object", ["+77010000001", "1414", "x"], None),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in JSONL_CASES],
                         ids=[c[0] for c in JSONL_CASES])
def test_jsonl_logs(obj, expected):
    parsed = rp.parse_jsonl(["", json.dumps(obj, ensure_ascii=False)], "log.jsonl")
    if expected is None:
        assert (parsed.messages, [n for n, _ in parsed.skipped]) == ([], [2])
        return
    [m] = parsed.messages
    key, text, recorded, sealed = expected
    assert m.key.startswith(key) and (m.text, m.recorded, m.recorded_sealed, m.line) == (
        text, recorded, sealed, 2)


@pytest.mark.parametrize(("head", "kind"), [
    (b'{"from": "+7701"}\n', "jsonl"),
    (b"\xef\xbb\xbfreceived_at,from,to,text,reply\n", "csv"),
    (b"\n2026-11-22 01:42:39 Log begins\n", "kannel"),
    (b"Receive SMS [SMSC:fake] [SVC:] [from:1] [to:2]\n", "kannel"),
    (b"date,sender,message\n", None),
    (b"", None),
])
def test_formats_are_detected_per_file(head, kind):
    assert rp.detect(head) == kind


def test_an_unknown_format_is_refused(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("date,sender,message\n")
    with pytest.raises(rp.ReplayError, match="not JSON Lines"):
        rp.read(path)


# ---------------------------------------------------------------- the plain functions


@pytest.fixture
def db(conn: psycopg.Connection) -> psycopg.Connection:
    """An empty database with the demo personas loaded (and no replay runs)."""
    conn.execute("TRUNCATE replay.sent, replay.items, replay.runs RESTART IDENTITY CASCADE")
    load_personas(conn)
    return conn


@pytest.fixture
def p(db, database_url) -> Iterator[pipeline.Pipeline]:
    built = make_pipeline(database_url)
    yield built
    built.pool.close()


def _parsed(rows: list[tuple[str, str, str]], name: str = "log") -> rp.Parsed:
    now = dt.datetime.now(dt.UTC)
    return rp.Parsed(name, "csv", [rp.Message(name, n, f"k{n}", now, sender, to, text)
                                   for n, (sender, to, text) in enumerate(rows, 1)])


def _traces(conn: psycopg.Connection) -> tuple[int, int, int]:
    return conn.execute("SELECT (SELECT count(*) FROM inbound), (SELECT count(*) FROM outbound), "
                        "(SELECT count(*) FROM accounts.citizens)").fetchone()


def _ids(conn: psycopg.Connection, run_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM replay.items WHERE run_id = %s ORDER BY seq", (run_id,))]


def test_a_dry_run_answers_as_the_pipeline_does_and_leaves_no_trace(db, p):
    rows = [(persona.phone, "1414", text) for persona, text, _ in demo.EXAMPLES]
    rows += [(VN_SENDERS[0], "8188", REGISTRATIONS[0])]
    run_id, _ = rp.create_run(db, "dry-run", None, [_parsed(rows)], {"8188": "VN"})
    done = rp.process(p, run_id, _ids(db, run_id))
    assert (done.done, done.failed, done.outbound) == (len(rows), 0, [])
    report = list(rp.report_rows(db, run_id))
    for row, (_, text, outcome) in zip(report, demo.EXAMPLES, strict=False):
        assert row.reply == expected_text(text, outcome)
        assert f"{row.service or 'common'}.{row.outcome}".endswith(outcome.split(".")[1])
    registration = report[-1]
    assert (registration.service, registration.outcome, registration.sealed) == (
        "account_registration", "registered", True)
    assert re.fullmatch(r"TK: an\.nguyen\.\d{4}, MK: \*{10} la tai khoan .*", registration.reply)
    assert _traces(db) == (0, 0, 0)   # the registration was rolled back, nothing recorded


def test_a_resumed_run_never_redoes_a_done_item(db, p):
    rows = [(demo.AIGERIM.phone, "1414", f"8 {n:03d}ABC01") for n in range(10)]
    run_id, _ = rp.create_run(db, "dry-run", None, [_parsed(rows)], {})
    ids = _ids(db, run_id)
    rp.process(p, run_id, ids[:4])
    before = db.execute("SELECT id, done_at FROM replay.items WHERE state = 'done'").fetchall()
    assert rp.open_items(db, run_id) == ids[4:]
    rp.process(p, run_id, ids)   # a redelivered batch, or a resume racing an old task
    after = db.execute("SELECT id, done_at FROM replay.items WHERE id = ANY(%s)",
                       ([i for i, _ in before],)).fetchall()
    assert sorted(after) == sorted(before)
    assert db.execute("SELECT count(*), max(attempts) FROM replay.items WHERE state = 'done'"
                      ).fetchone() == (10, 1)


def test_a_stopped_run_does_nothing(db, p):
    run_id, _ = rp.create_run(db, "dry-run", None, [_parsed([("+77010000001", "1414", "4")])], {})
    rp.set_state(db, run_id, "stopped")
    assert rp.process(p, run_id, _ids(db, run_id)).done == 0
    assert rp.progress(db, run_id) == rp.Progress(total=1, done=0, failed=0)


def test_a_key_repeated_in_the_input_is_replayed_once(db):
    parsed = _parsed([("+77010000001", "1414", "4")] * 2)
    parsed.messages[1] = parsed.messages[0]
    run_id, duplicates = rp.create_run(db, "dry-run", None, [parsed], {})
    assert (duplicates, rp.progress(db, run_id).total) == (1, 1)


def test_drive_paces_batches_and_tasks_carry_ids_only(db, p):
    rows = [(demo.AIGERIM.phone, "1414", f"hello {n}") for n in range(25)]
    run_id, _ = rp.create_run(db, "dry-run", 10.0, [_parsed(rows)], {"1414": "KZ"})
    now = [0.0]
    sent: list[tuple[float, list]] = []

    def send(ids: list[int]) -> None:   # the worker, inline
        sent.append((now[0], ids))
        rp.process(p, run_id, ids)

    final = rp.drive(db, run_id, send, rate=10.0, clock=lambda: now[0],
                     sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert final == rp.Progress(total=25, done=25, failed=0)
    assert [len(ids) for _, ids in sent] == [10, 10, 5]          # a batch a second at 10/s
    assert [round(t) for t, _ in sent] == [0, 1, 2]
    assert all(type(i) is int for _, ids in sent for i in ids)    # never a text or a number


def test_export_writes_the_window_and_never_a_sealed_text(db, p):
    ids = [messages.record_inbound(db, source="http", external_id=str(n), sender=sender,
                                   shortcode=to, text=text).id
           for n, (sender, to, text) in enumerate([
               (demo.AIGERIM.phone, "1414", "hello"), (VN_SENDERS[0], "8188", REGISTRATIONS[0]),
               (demo.AIGERIM.phone, "1414", "4"), (demo.AIGERIM.phone, "1414", "old")])]
    db.execute("UPDATE inbound SET received_at = now() - interval '2 days' WHERE id = %s",
               (ids[3],))
    routed = pipeline.dispatch(p, ids)
    for service, service_ids in routed.services.items():
        pipeline.answer(p, service, service_ids)
    now = dt.datetime.now(dt.UTC)
    rows = list(rp.export(db, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)))
    assert [(r["id"], r["source"], r["text"]) for r in rows] == [
        ("0", "http", "hello"), ("1", "http", REGISTRATIONS[0]), ("2", "http", "4")]
    assert (rows[0]["service"], rows[0]["outcome"], rows[0]["reply"]) == (
        None, "service_not_found", NOT_FOUND)
    assert (rows[1]["reply"], rows[1]["sealed"], rows[1]["outcome"]) == (
        None, True, "registered")
    assert rows[2]["service"] == "housing_queue" and rows[2]["reply"].startswith("Ochered'")
    assert "MK:" not in json.dumps(rows)


# ---------------------------------------------------------------- with real workers


@pytest.fixture(scope="module")
def workers(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[Gateway]:
    """The outbound worker and a replay worker, as separate processes."""
    folder = tmp_path_factory.mktemp("replay-gateway")
    gw = Gateway(gateway_settings(database_url, redis_url, folder, SECRET), folder)
    try:
        gw.spawn("worker-outbound", processes(gw.settings)["worker-outbound"])
        gw.spawn("worker-replay", [sys.executable, "-c", WORKER])
        for name in gw.processes:
            wait_for(lambda n=name: "ready." in gw.log(n), 60, name)
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gw(workers: Gateway, db: psycopg.Connection) -> Gateway:
    workers.settings.outbox.write_text("")
    return workers


def _cli(gw: Gateway, command, *args: str):
    result = CliRunner().invoke(command, list(args), env=gw.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def _record_history(p: pipeline.Pipeline) -> int:
    """A few hundred messages received and answered as live ones are; how many."""
    texts = [(persona.phone, "1414", text) for persona, text, _ in every_row_in_every_keyword()]
    texts = texts * 2 + [(persona.phone, "1414", text) for persona, text, _ in demo.EXAMPLES]
    texts += [(phone, "8188", text) for phone, text in zip(VN_SENDERS, REGISTRATIONS,
                                                          strict=True)]
    with p.pool.connection() as conn:
        ids = [messages.record_inbound(conn, source="smsc1", external_id=f"m-{n}", sender=sender,
                                       shortcode=to, text=text).id
               for n, (sender, to, text) in enumerate(texts)]
    routed = pipeline.dispatch(p, ids)
    for service, service_ids in routed.services.items():
        pipeline.answer(p, service, service_ids)
    return len(texts)


def _window() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    return ((now - dt.timedelta(hours=1)).isoformat(), (now + dt.timedelta(hours=1)).isoformat())


def test_export_then_dry_run_then_compare(gw, db, p, tmp_path):
    count = _record_history(p)
    assert count >= 250
    log = tmp_path / "log.jsonl"
    since, until = _window()
    _cli(gw, export, "--since", since, "--until", until, "--out", str(log))
    exported = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(exported) == count
    traces = _traces(db)

    report = tmp_path / "report.jsonl"
    started = time.monotonic()
    result = _cli(gw, replay, str(log), "--report", str(report))
    elapsed = time.monotonic() - started
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == count and all(line["state"] == "done" for line in lines)
    for number, (line, recorded) in enumerate(zip(lines, exported, strict=True), 1):
        assert line["input"] == f"{log}:{number}"
        if recorded["reply"] is not None:
            assert line["reply"] == recorded["reply"]          # same stores, same replies
        assert "***" in line["from"]                           # numbers masked in the report
    registered = [line for line in lines if line["service"] == "account_registration"]
    assert {line["outcome"] for line in registered} == {"phone_registered"}
    assert _traces(db) == traces                                # nothing recorded, no account
    print(f"\ndry-run: {count} messages in {elapsed:.2f} s including the command's start, "
          f"of which answering: {result.stderr.strip().splitlines()[-1]}")

    # The housing registry moved Aigerim up a place: her own housing replies now differ.
    db.execute("UPDATE housing.queue SET position = 1233 WHERE iin = %s", (demo.AIGERIM.iin,))
    result = _cli(gw, replay, "--compare", str(log))
    moved = sum(1 for r in exported if r["outcome"] == "found" and r["service"] == "housing_queue"
                and demo.OTHER_IN_HOUSING not in r["text"])
    sealed = sum(1 for r in exported if r["sealed"])
    table = {tuple(line.split()[:-5]): [int(n) for n in line.split()[-5:]]
             for line in result.stdout.splitlines() if re.search(r"(\s+\d+){5}$", line)}
    # total, same, different, no recorded reply, failed
    assert table[("housing_queue", "found")][2] == moved > 0
    assert table[("account_registration", "phone_registered")] == [4, 0, 0, 4, 0]
    assert table[("all",)] == [count, count - moved - sealed, moved, sealed, 0]
    assert "first differences" in result.stdout
    assert "nomer v ocheredi 1234" in result.stdout and "nomer v ocheredi 1233" in result.stdout
    assert _traces(db) == traces


def _send_items(conn: psycopg.Connection, run_id: int) -> list[tuple[str, int | None]]:
    return conn.execute("SELECT state, inbound_id FROM replay.items WHERE run_id = %s "
                        "ORDER BY seq", (run_id,)).fetchall()


def test_send_sends_each_once_also_when_stopped_and_resumed(gw, db, tmp_path):
    log = tmp_path / "send.csv"
    # Enough rows that at 8/s the run lasts about 25 s: it is stopped after 10, however slow
    # or fast the machine; the resume then sends the rest at a higher rate.
    rows = [(persona.phone, text) for persona, text, _ in demo.EXAMPLES] * 12
    start = dt.datetime(2026, 11, 22, 1, tzinfo=dt.UTC)
    log.write_text("received_at,from,to,text\n" + "".join(
        f'{(start + dt.timedelta(seconds=n)).isoformat().replace("+00:00", "Z")},{phone},1414,'
        f'"{text}"\n' for n, (phone, text) in enumerate(rows)))
    command = [sys.executable, "-m", "workers.cli", "replay", "--send", "--rate", "8",
               str(log)]
    env = {**gw.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_id = wait_for(lambda: db.execute("SELECT max(id) FROM replay.runs").fetchone()[0],
                          30, "the run")
        wait_for(lambda: rp.progress(db, run_id).done >= 10, 30, "10 items sent")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err.decode()
    assert f"--resume {run_id}" in err.decode()
    assert rp.get_run(db, run_id).state == "stopped"
    time.sleep(1.5)                                   # batches already queued find it stopped
    stopped_at = rp.progress(db, run_id)
    assert 10 <= stopped_at.done < len(rows)
    done_before = db.execute("SELECT id, done_at, inbound_id FROM replay.items "
                             "WHERE run_id = %s AND state = 'done' ORDER BY id", (run_id,)
                             ).fetchall()

    result = _cli(gw, replay, "--resume", str(run_id), "--rate", "200")
    assert f"{len(rows)} sent" in result.stderr
    items = _send_items(db, run_id)
    assert {state for state, _ in items} == {"done"}
    assert db.execute("SELECT id, done_at, inbound_id FROM replay.items WHERE id = ANY(%s) "
                      "ORDER BY id", ([i for i, _, _ in done_before],)).fetchall() == done_before
    inbound = {i for _, i in items}
    assert len(inbound) == len(rows)
    assert db.execute("SELECT count(*) FROM inbound WHERE source = %s",
                      (f"replay:{run_id}",)).fetchone()[0] == len(rows)
    sent = wait_for(lambda: len(s := [m for m in gw.sent() if m["inbound_id"] in inbound])
                    >= len(rows) and s, 30, "every reply delivered")
    assert sorted(m["inbound_id"] for m in sent) == sorted(inbound)   # each exactly once
    by_inbound = {m["inbound_id"]: m for m in sent}
    for (state, inbound_id), (phone, text) in zip(items, rows, strict=True):
        outcome = next(o for p_, t, o in demo.EXAMPLES if t == text)
        assert by_inbound[inbound_id]["to"] == phone
        assert by_inbound[inbound_id]["text"] == expected_text(text, outcome)

    # The same log again is a new run that sends nothing.
    result = _cli(gw, replay, "--send", str(log))
    assert f"0 sent, {len(rows)} already sent" in result.stderr
    time.sleep(1)
    assert len([m for m in gw.sent() if m["inbound_id"] is not None]) == len(rows)
    assert db.execute("SELECT count(*) FROM inbound").fetchone()[0] == len(rows)


def test_without_a_replay_worker_the_command_says_so(db, database_url, redis_server, tmp_path):
    with claimed_redis_db(redis_server) as empty:   # a Redis db no worker listens on
        env = {**os.environ, "GOVSMS_DATABASE_URL": database_url, "GOVSMS_REDIS_URL": empty,
               "GOVSMS_DATA_DIR": str(tmp_path), "GOVSMS_SECRET_KEY": KEY}
        result = CliRunner().invoke(replay, [str(SAMPLES / "messages.csv")], env=env)
    assert result.exit_code == 1 and "no worker consumes the replay queue" in result.output
    assert db.execute("SELECT count(*) FROM replay.runs").fetchone() == (0,)
