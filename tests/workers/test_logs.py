"""Personal data is masked in logs, whoever logs it."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replies.masking import mask_digits, mask_numbers, mask_plate
from workers import logs
from workers.local import run
from workers.logs import QUIET, JsonFormatter, TextFormatter, correlation
from workers.settings import Settings


@pytest.mark.parametrize(("raw", "masked"), [
    ("+77011234567", "+7701***4567"),
    ("77011234567", "7701***4567"),
    ("IIN 900101300017 asks", "IIN 9001***0017 asks"),
    ("to +84905123456 from 8188", "to +8490***3456 from 8188"),
    ("inbound 12345 from 1414", "inbound 12345 from 1414"),
])
def test_mask_digits(raw, masked):
    assert mask_digits(raw) == masked


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("somebody.else", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_correlation_id_and_mask_any_logger():
    line = JsonFormatter().format(_record("reply to %s about %s", "+77011234567", "880102300452",
                                          **correlation(42)))
    entry = json.loads(line)
    assert entry["msg"] == "reply to +7701***4567 about 8801***0452"
    assert entry["cid"] == "in-42" and entry["level"] == "INFO" and entry["logger"] == "somebody.else"
    assert correlation(None, 7) == {"cid": "out-7"}


def test_a_traceback_is_masked_too():
    try:
        raise ValueError("bad phone +77011234567")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(record)
        assert "+7701***4567" in text and "1234567" not in text


@pytest.mark.parametrize(("plate", "masked"), [("123ABC01", "123***01"), ("A123BCD", "A123***")])
def test_mask_plate(plate, masked):
    assert mask_plate(plate) == masked


@pytest.mark.parametrize(("raw", "masked"), [
    ("call +7 701 000 0001 now", "call +7701***0001 now"),
    ("call 8 (701) 000-00-01 now", "call 8701***0001 now"),
    ("from +84 905 123 456", "from +8490***3456"),
    ("from 090-512-3456", "from 0905***3456"),
    ("IIN 880102 300452", "IIN 8801***0452"),
    ("at 2024-05-20 12:00:00,123", "at 2024-05-20 12:00:00,123"),
    ("inbound 12345 from 1414 in 2 parts", "inbound 12345 from 1414 in 2 parts"),
    ("call +7 701 000 0001: now", "call +7701***0001: now"),
    ("8 (701) 000-00-01 12:30", "8701***0001 12:30"),
    ("at 2026-12-02T00:35:36.190534+00:00", "at 2026-12-02T00:35:36.190534+00:00"),
    ("Task x[5089ae22-784d-4306-a282] succeeded in 0.021063523000009354s",
     "Task x[5089ae22-784d-4306-a282] succeeded in 0.021063523000009354s"),
])
def test_numbers_written_in_groups_are_masked_in_logs(raw, masked):
    assert mask_numbers(raw) == masked
    assert TextFormatter("%(message)s").format(_record(raw)) == masked


_GROUPS = st.lists(st.text("0123456789", min_size=1, max_size=4), min_size=3, max_size=5)
_JOINS = st.sampled_from([" ", "-"])


@given(groups=_GROUPS.filter(lambda g: 10 <= len("".join(g)) <= 15), join=_JOINS,
       before=st.text(max_size=20), after=st.text(max_size=20), bracket=st.booleans())
def test_no_number_in_groups_survives_a_log_line(groups, join, before, after, bracket):
    if bracket:
        groups = [groups[0], f"({groups[1]})", *groups[2:]]
    line = f"{before} : {join.join(groups)}, {after}"
    digits = "".join(groups).replace("(", "").replace(")", "")
    masked = mask_numbers(line)
    assert f"{digits[:4]}***{digits[-4:]}" in masked, masked
    assert join.join(groups) not in masked


BRIDGE = "bridge-secret-for-the-log-test-0123456789"
SENDSMS = ("GET http://127.0.0.1:13013/cgi-bin/sendsms?username=govsms&password=kannel-pw-42"
           "&from=8188&to=%2B84905123456&text=TK%3A+an01%2C+MK%3A+Xy7pQ2&charset=UTF-8"
           "&dlr-mask=19&dlr-url=http%3A%2F%2F127.0.0.1%3A8080%2Fsms%2Fdlr%3Ftoken%3D"
           f"{BRIDGE}%26outbound%3D5%26type%3D%25d \"HTTP/1.1 202 Accepted\"")


@pytest.mark.parametrize("line", [
    SENDSMS,
    f"transport kannel+http://govsms:kannel-pw-42@k:13013/cgi-bin/sendsms?dlr-url=http%3A%2F%2F"
    f"h%2Fsms%2Fdlr%3Ftoken%3D{BRIDGE}",
    f"dlr-url http://127.0.0.1:8080/sms/dlr?token={BRIDGE}&type=%d",
    "broker redis://:kannel-pw-42@10.0.0.5:6379/0, smpp smpp://tx:kannel-pw-42@smsc:2775",
    f"headers {{'authorization': 'Bearer {BRIDGE}', 'x-bridge-token': '{BRIDGE}'}}",
    f'bind {{"system_id": "tx", "password": "kannel-pw-42", "secret": "{BRIDGE}"}}',
])
def test_credentials_and_texts_are_redacted_in_every_record(line):
    for formatter in (JsonFormatter(), TextFormatter("%(message)s")):
        out = formatter.format(_record("%s", line))
        assert "kannel-pw-42" not in out and BRIDGE not in out, out
        assert "Xy7pQ2" not in out and "84905123456" not in out, out


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET}
    yield
    root.handlers[:], root.level = handlers, level
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_third_party_loggers_stay_quiet_even_at_debug(root_logging, capsys):
    logs.configure("DEBUG", "json")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/sendsms?password=kannel-pw-42"
        with httpx.Client() as client:
            assert client.get(url).status_code == 202
    finally:
        server.shutdown()
    logging.getLogger("govsms.test").debug("ours still logs")
    for name in ("kombu", "smpplib", "tornado.access", "uvicorn.access", "amqp", "urllib3"):
        logging.getLogger(name).info("a library's line")
    err = capsys.readouterr().err
    assert "sendsms" not in err and "a library's line" not in err
    assert "ours still logs" in err
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in QUIET)


def test_the_banner_shows_no_password_and_no_dlr_token(tmp_path, capsys):
    dlr = quote(f"http://127.0.0.1:8080/sms/dlr?token={BRIDGE}&outbound={{outbound_id}}&type=%d")
    settings = Settings(data_dir=tmp_path, bridge_secret=BRIDGE, transport=(
        f"kannel+http://govsms:kannel-pw-42@127.0.0.1:13013/cgi-bin/sendsms?dlr-url={dlr}"))
    run._print_banner(settings, "redis://:redis-pw-42@127.0.0.1:6379/0",
                      "postgresql://govsms:pg-pw-42@127.0.0.1:5432/govsms", tmp_path / "logs")
    banner = capsys.readouterr().out
    assert "kannel+http://govsms:***@127.0.0.1:13013/cgi-bin/sendsms?dlr-url=" in banner
    for secret in (BRIDGE, "kannel-pw-42", "redis-pw-42", "pg-pw-42"):
        assert secret not in banner
