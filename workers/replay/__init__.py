"""Batch replay of message logs: read, checkpoint in PostgreSQL, run on the `replay` queue, report.

    log files ──► readers ──► runs: replay.runs / replay.items (the checkpoint) ──► [replay queue]
        task (run id and item ids only) ──► answering.process(): dry-run / compare answer
        inside a rolled-back transaction; send records a new inbound row and answers it
        ──► [outbound queue]
    driving.drive() enqueues a run's open items at a rate; report: the export, a run's
    report, new replies against recorded ones.

Formats, detected per file: our own export (JSON Lines), CSV with the header
`received_at,from,to,text[,reply][,id]`, and Kannel's access log (bearerbox's
default `access-log-format`). The tasks carry a run id and item ids only: the texts
and numbers stay in PostgreSQL (Flower shows task arguments). docs/replay.md.

The plain functions are re-exported here (`replay.process(...)`, `replay.drive(...)`);
the Celery wiring is not: `workers.replay.task` holds the task and `register(app)`.
"""

from workers.replay.answering import (
    SHOWN_WHEN_SEALED,
    Processed,
    evaluate,
    fail_items,
    masked,
    process,
)
from workers.replay.driving import BATCH_SIZE, batches, drive
from workers.replay.readers import (
    CSV_COLUMNS,
    FORMATS,
    Message,
    Parsed,
    ReplayError,
    detect,
    kannel_text,
    normalized,
    parse_csv,
    parse_jsonl,
    parse_kannel,
    read,
)
from workers.replay.report import Comparison, ReportRow, Tally, compare, export, report_rows
from workers.replay.runs import (
    MODES,
    Item,
    Progress,
    Result,
    Run,
    create_run,
    get_run,
    open_items,
    progress,
    set_state,
)

__all__ = [
    "BATCH_SIZE", "CSV_COLUMNS", "FORMATS", "MODES", "SHOWN_WHEN_SEALED", "Comparison", "Item",
    "Message", "Parsed", "Processed", "Progress", "ReplayError", "ReportRow", "Result", "Run", "Tally",
    "batches", "compare", "create_run", "detect", "drive", "evaluate", "export", "fail_items",
    "get_run", "kannel_text", "masked", "normalized", "open_items", "parse_csv", "parse_jsonl",
    "parse_kannel", "process", "progress", "read", "report_rows", "set_state",
]
