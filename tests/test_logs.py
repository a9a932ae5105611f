"""Personal data is masked in logs, whoever logs it."""

from __future__ import annotations

import logging

import pytest

from replies.masking import mask_digits, mask_plate
from workers.logs import MaskingFilter


@pytest.mark.parametrize(("raw", "masked"), [
    ("+77011234567", "+7701***4567"),
    ("77011234567", "7701***4567"),
    ("IIN 900101300017 asks", "IIN 9001***0017 asks"),
    ("to +84905123456 from 8188", "to +8490***3456 from 8188"),
    ("inbound 12345 from 1414", "inbound 12345 from 1414"),
])
def test_mask_digits(raw, masked):
    assert mask_digits(raw) == masked


def test_filter_masks_arguments_of_any_logger(caplog):
    logger = logging.getLogger("somebody.else")
    logger.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("reply to %s about %s", "+77011234567", "880102300452")
    assert caplog.records[0].getMessage() == "reply to +7701***4567 about 8801***0452"
    assert "1234567" not in caplog.text and "300452" not in caplog.text


@pytest.mark.parametrize(("plate", "masked"), [("123ABC01", "123***01"), ("A123BCD", "A123***")])
def test_mask_plate(plate, masked):
    assert mask_plate(plate) == masked
