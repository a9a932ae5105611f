"""Kannel in `make bench`: Debian's Kannel on its own, then the gateway driven through it.

Each measurement runs bearerbox and smsbox under a `Supervisor` (as bench/gateway.py runs the
gateway) on free ports in a folder of their own, with Kannel's test SMSC, fakesmsc, as the
phones: it writes MOs to bearerbox's `smsc = fake` link and logs every MT it gets
(`Got message N: <...>`, N counting from 1), which is where the replies are counted.

1. **The ceiling** (`measure_ceiling`): Kannel alone, a static-text sms-service
   (`text = "ok"`: smsbox answers each MO itself, no HTTP). fakesmsc writes a fixed number of
   MOs at full speed (`-i 0 -m N`), N sized from a short probe so that Kannel still has MOs
   waiting when the window ends: the replies per second counted at fakesmsc over a steady
   window after a warm-up is Kannel's rate flat out. fakesmsc cannot pace thousands a
   second (between two sends it polls with a timeout rounded to 0 ms: a core of its own), so
   it writes them all at once and Kannel works through its queue. CPU is that of bearerbox,
   smsbox and fakesmsc (/proc/<pid>/stat, `bench.cpu`) from the first MO written to the last
   reply received, per reply: every MO read and every reply written is in it.
2. **Through Kannel** (`measure_through_kannel`): a second start of the gateway
   (`bench.gateway.gateway`, the same demo data) whose outbound transport is smsbox's
   sendsms with a dlr-url to the ingest's `/sms/dlr`, and Kannel configured with
   deploy/kannel/smsbox.conf itself (catch-all get-url to `/sms/inbound` with the token,
   http-request-retry, mo-recode, the sendsms-user...; only ports, the ingest's address,
   the token, the password and the log files put in). fakesmsc writes the bench's traffic
   (`bench.loadgen.Traffic`) at a fixed rate (`-i 1/rate -m N`):
   - `steady`: first at the rate the gateway sustained with the file transport. A rate
     holds when the replies counted at fakesmsc over the window keep pace (>= 95% of the
     MOs written) and the MOs without their reply grow by less than a second of traffic.
     A rate that clearly does not hold (more than ABORT_BACKLOG_S of its traffic waiting
     for replies) is stopped early, a second fakesmsc taking the replies still to come, so
     little piles up to drain; the next rate is STEP_DOWN of it, or 95% of the replies seen
     if that is more. The first rate that holds (else the last reply rate) is
     `kannel_e2e_msgs_per_s`.
   - `burst`: 3x that rate for 60 s; Kannel retries what the gateway refuses (503, more
     waiting than the SLA allows) as smsbox.conf says, and holds the rest in its queue. The
     share of the MOs the gateway accepted that were answered within the SLA of receipt is
     `kannel_burst_sla_ok_ratio`; MOs Kannel still hands over more than `burst_feed_cap`
     after the last was written are not counted (they are reported as not accepted).
   Each phase restarts bearerbox with its own `smsc-id`, which Kannel hands the ingest as
   `smsc` (the inbound `source`): PostgreSQL's rows of a phase are found by it, as the other
   phases' by their tag.
"""

from __future__ import annotations

import traceback
from typing import Any

from bench.kannel.ceiling import measure_ceiling
from bench.kannel.peers import FIGURES, Deployed, Phone, Ports, missing
from bench.kannel.through import measure_through_kannel

__all__ = ["FIGURES", "Deployed", "Phone", "Ports", "measure", "missing", "ratio"]


def measure(seconds: float, *, e2e_rate: float | None, redis_url: str | None = None,
            database_url: str | None = None, persons: int = 20_000, through: bool = True,
            log: Any = print) -> dict[str, Any]:
    """Every Kannel figure (None for those that could not be measured, the reason in the
    details): the ceiling, then (unless not `through`) the gateway through Kannel."""
    figures: dict[str, Any] = dict.fromkeys(FIGURES)
    details: dict[str, Any] = {}
    reason = missing()
    if reason:
        log(f"  not measured: {reason}")
        return {"figures": figures, "details": {"skipped": reason}}
    try:
        ceiling = measure_ceiling(seconds, log=log)
        figures.update(ceiling["figures"])
        details["ceiling"] = ceiling["details"]
    except Exception as error:  # noqa: BLE001 - the rest of the run's figures still count
        details["ceiling"] = {"error": _failed("Kannel's ceiling", error, log)}
    if not through:
        return {"figures": figures, "details": details}
    try:
        result = measure_through_kannel(seconds, e2e_rate or 1.0, redis_url=redis_url,
                                         database_url=database_url, persons=persons, log=log)
        figures.update(result["figures"])
        details["through"] = result["details"]
    except Exception as error:  # noqa: BLE001
        details["through"] = {"error": _failed("the gateway through Kannel", error, log)}
    return {"figures": figures, "details": details}


def _failed(what: str, error: Exception, log: Any) -> str:
    """Log why `what` was not measured (with the traceback) and return the reason."""
    for line in traceback.format_exc().rstrip().splitlines():
        log(f"    {line}")
    reason = f"{type(error).__name__}: {error}"
    log(f"  {what} not measured: {reason}")
    return reason


def ratio(e2e: float | None, ceiling: float | None) -> float | None:
    """`e2e / ceiling`, None unless both were measured."""
    return round(e2e / ceiling, 5) if e2e and ceiling else None
