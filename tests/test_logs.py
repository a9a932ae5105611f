"""Personal data is masked in logs, whoever logs it."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from replies.masking import mask_digits, mask_plate
from workers.logs import JsonFormatter, TextFormatter, correlation


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
