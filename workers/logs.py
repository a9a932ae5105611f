"""Logging: JSON lines with a correlation id per message, personal data masked, secrets redacted.

Every record is masked when it is formatted, its traceback included, whoever
logged it: phone numbers and IINs show as `+7701***4567` (written in groups too),
URL passwords, secret parameters (`password=`, `token=`, a dlr-url's token) and
SMS texts in URLs as `***`. Third-party libraries log at WARNING and above only:
at INFO httpx prints every sendsms URL, smpplib its PDUs. The correlation id of a
message is `in-<inbound id>` from ingest to reply (`out-<id>` for an SMS that
answers no inbound message), passed as `extra=correlation(...)`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from replies.masking import mask_log

# Loggers of libraries whose INFO or DEBUG lines carry URLs, PDUs, task arguments or texts.
QUIET = ("httpx", "httpcore", "urllib3", "kombu", "amqp", "smpplib", "asyncio", "tornado",
         "tornado.access", "tornado.application", "tornado.general", "flower",
         "uvicorn.access", "redis", "psycopg", "multipart", "python_multipart")


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
        # Masked before JSON escapes them, so `"password": "..."` is found as logged; the
        # other fields are ours (a time, a level, a logger's name, `in-<id>`).
        for key in ("msg", "exc"):
            if key in entry:
                entry[key] = mask_log(entry[key])
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human lines, masked the same way (for a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_log(super().format(record))


def quiet_libraries(level: int = logging.WARNING) -> None:
    """Third-party loggers at `level` or quieter, whatever the root's level."""
    for name in QUIET:
        logger = logging.getLogger(name)
        if logger.level < level:  # NOTSET (0) included: it would inherit the root's
            logger.setLevel(level)


def configure(level: str = "INFO", style: str = "json") -> None:
    """Root logging to stderr, as JSON lines or as text, masked; libraries at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if style == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()
