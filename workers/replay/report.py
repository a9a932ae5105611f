"""The export of live messages as JSON Lines, a run's report, new replies against recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import class_row

from replies.masking import mask_digits
from workers import messages


def export(conn: psycopg.Connection, since: dt.datetime,
           until: dt.datetime) -> Iterator[dict[str, Any]]:
    """Inbound messages received in [since, until), with their replies; a sealed reply as null.

    Messages that batch replay itself sent (source `replay:<run>`) are left out.
    """
    for row in messages.received_between(conn, since, until):
        yield {"received_at": row["received_at"].astimezone(dt.UTC).isoformat(),
               "from": row["sender"], "to": row["shortcode"], "text": row["text"],
               "id": row["external_id"], "source": row["source"], "service": row["service"],
               "reply": row["reply"], "outcome": row["outcome"], "sealed": row["sealed"]}


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One item of a run as the report shows it."""

    file: str
    line: int
    key: str
    sender: str
    shortcode: str
    text: str
    recorded: str | None
    recorded_sealed: bool
    state: str
    service: str | None
    outcome: str | None
    reply: str | None
    sealed: bool | None
    inbound_id: int | None
    error: str | None

    @property
    def comparable(self) -> bool:
        """The log recorded a reply we can read (not sealed)."""
        return self.recorded is not None and not self.recorded_sealed

    @property
    def same(self) -> bool | None:
        """Whether the new reply is the recorded one; None when there is nothing to compare."""
        if self.state != "done" or not self.comparable:
            return None
        return self.reply == self.recorded

    def as_json(self, mode: str) -> dict[str, Any]:
        """The report line: phone numbers and IINs masked, as in logs."""
        line: dict[str, Any] = {
            "input": f"{self.file}:{self.line}", "id": self.key,
            "from": mask_digits(self.sender), "to": self.shortcode,
            "text": mask_digits(self.text), "state": self.state, "service": self.service,
            "outcome": self.outcome, "reply": self.reply, "sealed": bool(self.sealed)}
        if self.error:
            line["error"] = self.error
        if mode == "compare":
            line["recorded"] = self.recorded
            line["same"] = self.same
        if mode == "send":
            line["inbound_id"] = self.inbound_id
        return line


_REPORT = """
SELECT file, line, key, sender, shortcode, text, recorded, recorded_sealed, state, service,
       outcome, reply, sealed, inbound_id, error
FROM replay.items WHERE run_id = %s ORDER BY seq
"""


def report_rows(conn: psycopg.Connection, run_id: int) -> Iterator[ReportRow]:
    """Every item of the run in input order, with its result."""
    with conn.cursor(row_factory=class_row(ReportRow)) as cur:
        yield from cur.execute(_REPORT, (run_id,))


@dataclass(slots=True)
class Tally:
    """Counts of one (service, outcome)."""

    total: int = 0
    same: int = 0
    different: int = 0
    unrecorded: int = 0
    failed: int = 0

    def add(self, row: ReportRow) -> None:
        """Count one item."""
        self.total += 1
        if row.state != "done":
            self.failed += 1
        elif row.same is None:
            self.unrecorded += 1
        elif row.same:
            self.same += 1
        else:
            self.different += 1


@dataclass(slots=True)
class Comparison:
    """New replies against recorded ones, by service and outcome, and the first differences."""

    by_group: dict[tuple[str, str], Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)
    differences: list[ReportRow] = field(default_factory=list)

    def render(self, first: int = 10) -> str:
        """The summary table and the first `first` differences."""
        head = f"{'service':<22}{'outcome':<22}{'total':>7}{'same':>7}{'different':>11}" \
               f"{'no recorded':>13}{'failed':>8}"
        lines = [head, "-" * len(head)]

        def row(service: str, outcome: str, t: Tally) -> str:
            return (f"{service:<22}{outcome:<22}{t.total:>7}{t.same:>7}{t.different:>11}"
                    f"{t.unrecorded:>13}{t.failed:>8}")

        for (service, outcome), tally in sorted(self.by_group.items()):
            lines.append(row(service, outcome, tally))
        lines += ["-" * len(head), row("all", "", self.overall)]
        if self.differences:
            lines.append(f"\nfirst differences ({min(first, len(self.differences))} of "
                         f"{self.overall.different}):")
            for d in self.differences[:first]:
                lines += [f"  {d.file}:{d.line}  {d.service or '-'}.{d.outcome}",
                          f"    recorded: {d.recorded}", f"    now:      {d.reply}"]
        return "\n".join(lines)


def compare(rows: Iterable[ReportRow]) -> Comparison:
    """Tally new against recorded replies by the new reply's service and outcome."""
    out = Comparison()
    for r in rows:
        group = (r.service or "-", r.outcome or ("failed" if r.state != "done" else "-"))
        out.by_group.setdefault(group, Tally()).add(r)
        out.overall.add(r)
        if r.same is False:
            out.differences.append(r)
    return out
