"""Logging: JSON lines with a correlation id per message, personal data masked.

Every record is masked when it is formatted, its traceback included, whoever
logged it: phone numbers and IINs show as `+7701***4567`. The correlation id of a
message is `in-<inbound id>` from ingest to reply (`out-<id>` for an SMS that
answers no inbound message), passed as `extra=correlation(...)`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from replies.masking import mask_digits


def correlation(inbound_id: int | None, outbound_id: int | None = None) -> dict[str, str]:
    """The `extra` that tags a log record with its message's correlation id."""
    return {"cid": f"in-{inbound_id}" if inbound_id is not None else f"out-{outbound_id}"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, cid (when known), exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                 "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if hasattr(record, "cid"):
            entry["cid"] = record.cid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return mask_digits(json.dumps(entry, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """Human lines, masked the same way (for a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_digits(super().format(record))


def configure(level: str = "INFO", style: str = "json") -> None:
    """Root logging to stderr, as JSON lines or as text, masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if style == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
