"""Logging set-up, with personal data masked: phones and IINs never appear in full."""

from __future__ import annotations

import logging
import re

# A phone number (optionally +) or IIN: 10 to 15 digits in a row.
_LONG_NUMBER = re.compile(r"(?<!\d)(\+?)(\d{4})(\d{2,7})(\d{4})(?!\d)")


def mask_phone(value: str) -> str:
    """`+77011234567` -> `+7701***4567`; IINs the same way (`9001***1234`)."""
    return _LONG_NUMBER.sub(lambda m: f"{m[1]}{m[2]}***{m[4]}", value)


class MaskingFilter(logging.Filter):
    """Masks every long digit run in a record's final message, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phone(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str = "INFO") -> None:
    """Root logging to stderr, masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
