"""The gateway driven through Kannel as deployed: steady rates stepped down, then a burst."""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import cpu
from bench.gateway import System, gateway
from bench.kannel.peers import (
    BURST_FACTOR, BURST_S, Deployed, KANNEL_PROCESSES, MO_LINES, Phone, Ports, boxes, mo_lines,
    scratch_folder,
)
from bench.loadgen import Traffic
from bench.phases import stats
from workers.local.gateway import read_from
from workers.messages import reports
from workers.settings import Settings


def through_durations(seconds: float) -> dict[str, float]:
    """The through-Kannel phases' lengths for `seconds` (5: warm-up 5 s, window 10 s, a 60 s
    burst after which Kannel may hand MOs over for 20 s more; shorter only for tiny runs)."""
    return {"warmup": max(seconds, 1.0), "window": max(2 * seconds, 1.0),
            "burst": min(BURST_S, max(12 * seconds, 3.0)),
            "burst_feed_cap": min(BURST_S / 3, max(4 * seconds, 3.0)), "drain_cap": 90.0}


STEPS = 5  # steady rates tried at most
STEP_DOWN = 0.7  # the next rate after one that did not hold, unless its replies said more
ABORT_BACKLOG_S = 1.5  # a steady step stops once this much of its traffic waits for replies

Sample = tuple[float, int, int]  # (at, MOs written, replies received) at fakesmsc


@dataclass
class Step:
    """One fakesmsc run against the gateway through Kannel, and what was seen of it."""

    name: str
    source: str
    rate: float
    count: int
    warmup: float
    window: float
    sender: Phone | None = None
    # A step stopped early: fakesmsc writing no more, taking the replies still to come.
    receiver: Phone | None = None
    first: Sample = (0.0, 0, 0)
    last: Sample = (0.0, 0, 0)
    cpu: dict[str, Any] | None = None
    aborted: bool = False
    drained: bool = False
    drained_s: float = 0.0
    burst: bool = False
    cut_at: float | None = None  # the burst: MOs received after this are not counted
    smsbox: dict[str, int] = field(default_factory=dict)
    integrity: dict[str, Any] = field(default_factory=dict)

    def read(self) -> Sample:
        """Read both fakesmsc logs: (now, MOs written, replies received)."""
        assert self.sender is not None
        _, sent, replies = self.sender.read()
        if self.receiver is not None:
            replies += self.receiver.read()[2]
        return time.time(), sent, replies

    @property
    def replies(self) -> int:
        return sum(p.replies for p in (self.sender, self.receiver) if p is not None)

    def replies_per_s(self) -> float:
        span = self.last[0] - self.first[0]
        return (self.last[2] - self.first[2]) / span if span > 0 else 0.0

    def written_per_s(self) -> float:
        span = self.last[0] - self.first[0]
        return (self.last[1] - self.first[1]) / span if span > 0 else 0.0

    def backlog_growth(self) -> int:
        """MOs written without their reply at fakesmsc: at the window's end less its start."""
        return (self.last[1] - self.last[2]) - (self.first[1] - self.first[2])


class Through:
    """The gateway through Kannel: the phases against one running `System`."""

    def __init__(self, system: System, folder: Path, ports: Ports, deployed: Deployed,
                 password: str, *, persons: int, log: Any) -> None:
        self.system = system
        self.folder = folder
        self.ports = ports
        self.deployed = deployed
        self.password = password
        self.log = log
        self.tag = f"bench-{uuid.uuid4().hex[:8]}-kannel"
        self.lines = mo_lines(Traffic(seed=2828, persons=persons), MO_LINES)
        self.steps: list[Step] = []
        retry = float(deployed.get("smsbox", "http-queue-delay", "5") or 5)
        self.quiet_s = 2 * retry + 2  # no MO left in smsbox's retry queue once this passes

    def run(self, name: str, *, rate: float, seconds: float, warmup: float,
            abort: bool = False, feed_cap: float | None = None,
            drain_cap: float = 90.0) -> Step:
        """fakesmsc at `rate` for warmup + `seconds`, then every MO answered; the figures over
        the window after the warm-up, at fakesmsc and in PostgreSQL.

        `abort`: stop writing once more than ABORT_BACKLOG_S of the traffic waits for its
        reply (the rate clearly does not hold: no need to pile up what must then drain); a
        second fakesmsc then takes the replies still to come. `feed_cap` (the burst): stop
        counting MOs Kannel still hands over this long after the last was written."""
        source = f"{self.tag}-{name}"
        count = max(math.ceil(rate * (warmup + seconds)), 1)
        step = Step(name, source, rate, count, warmup, seconds, burst=feed_cap is not None)

        def config(ports: Ports) -> str:
            return self.deployed.config(self.folder / name, ports, smsc_id=source,
                                        ingest=self.system.settings.ingest_url,
                                        token=self.system.settings.secret(),
                                        password=self.password)

        with boxes(self.folder / name, config, self.ports, keep_sendsms=True) as k:
            sender = step.sender = k.phone("mo", self.lines, count=count, rate=rate)
            roots = {**self.system.roots, **k.roots}
            at_start, before = self._snapshot(roots), None
            end = sender.started + warmup + seconds
            limit = max(ABORT_BACKLOG_S * rate, 20)
            while True:
                sample = step.read()
                if before is None and sample[0] >= sender.started + warmup:
                    step.first, before = sample, self._snapshot(roots)
                if sample[0] >= end:
                    break
                if abort and sample[1] - sample[2] > limit:
                    step.aborted = True
                    break
                time.sleep(0.25)
            step.last = step.read()
            if before is None:  # stopped within the warm-up: the window is all it ran
                step.first, before = (sender.started, 0, 0), at_start
            step.cpu = cpu.cpu_between(before, self._snapshot(roots))
            if step.aborted:
                sender.stop()
                sender.read()
                step.receiver = k.phone("replies", self.lines[:1], count=0)
            if feed_cap is None:
                step.drained_s, step.drained = self._drain(step, drain_cap)
            else:
                step.drained_s, step.drained = self._settle(step, end, feed_cap, drain_cap)
            for phone in (step.sender, step.receiver):
                if phone is not None:
                    phone.stop()
                    phone.read()
            step.smsbox = _smsbox_counts(self.folder / name / "smsbox.log")
            step.integrity = self._integrity(step)
        self.steps.append(step)
        return step

    def _snapshot(self, roots: dict[str, int]) -> cpu.CpuSnapshot:
        system = self.system
        return cpu.snapshot(roots, system.connect, None if system.embedded_redis else system.redis,
                            own_postgres=system.embedded_postgres)

    def _fed(self, conn: Any, step: Step, changed: list[Any]) -> bool:
        """Whether Kannel handed the gateway every MO written, each is answered and its reply
        reached fakesmsc; or, every accepted one answered, nothing changed for longer than
        smsbox waits between retries (the rest it gave up on)."""
        sample = step.read()
        accepted = reports.integrity(conn, step.source)[0]
        unanswered = reports.unanswered(conn, step.source)
        now = time.monotonic()
        if (accepted, sample[2]) != changed[0]:
            changed[:] = [(accepted, sample[2]), now]
        assert step.sender is not None
        written_all = step.aborted or step.sender.sent >= step.count
        return written_all and unanswered == 0 and (
            (accepted >= sample[1] and sample[2] >= accepted) or now - changed[1] >= self.quiet_s)

    def _drain(self, step: Step, cap_s: float) -> tuple[float, bool]:
        """Wait until `_fed`; (seconds waited, whether it was)."""
        started = time.monotonic()
        changed: list[Any] = [None, started]
        with self.system.connect() as conn:
            while time.monotonic() - started < cap_s:
                if self._fed(conn, step, changed):
                    return time.monotonic() - started, True
                time.sleep(0.5)
        self.log(f"  ({step.name} through Kannel not drained after {cap_s:.0f} s)")
        return time.monotonic() - started, False

    def _settle(self, step: Step, written_by: float, feed_cap: float,
                cap_s: float) -> tuple[float, bool]:
        """The burst: wait until `_fed`, but no longer than `feed_cap` after the last MO was
        written: Kannel holds what the gateway refused and hands it over as the gateway takes
        it, for minutes after an overload. If MOs are still to come then, those received
        from now on are not counted (`cut_at`). Then wait until every counted MO is answered
        or past the SLA. (seconds waited, whether every MO was accepted and answered)."""
        started = time.monotonic()
        changed: list[Any] = [None, started]
        sla = self.system.settings.sla_seconds
        with self.system.connect() as conn:
            while time.time() < written_by + feed_cap:
                if self._fed(conn, step, changed):
                    return time.monotonic() - started, True
                time.sleep(0.5)
            _, written, _ = step.read()
            if reports.integrity(conn, step.source)[0] < written:
                step.cut_at = time.time()
                self.log(f"  (burst through Kannel: MOs Kannel hands over more than "
                         f"{feed_cap:.0f} s after the last was written are not counted)")
            until = step.cut_at or math.inf
            while time.monotonic() - started < cap_s:
                step.read()
                pending = [r[1] for r in reports.timings(conn, step.source)
                           if r[1] <= until and (r[4] is None or r[5] < r[6])]
                if not pending:
                    return time.monotonic() - started, step.cut_at is None
                if time.time() > max(pending) + sla + 1:
                    break
                time.sleep(1.0)
        return time.monotonic() - started, False

    def counted(self, step: Step) -> tuple[list[tuple], list[tuple]]:
        """A step's PostgreSQL rows (id, received, created, claimed, sent, parts sent, parts):
        those counted, and those received after the bench stopped counting."""
        with self.system.connect() as conn:
            rows = reports.timings(conn, step.source)
        if step.cut_at is None:
            return rows, []
        return ([r for r in rows if r[1] <= step.cut_at],
                [r for r in rows if r[1] > step.cut_at])

    def _integrity(self, step: Step) -> dict[str, Any]:
        """Every MO the gateway accepted got exactly one reply: PostgreSQL's rows, and the
        replies fakesmsc received. A step stopped early loses at the phone the MTs that were
        in its first fakesmsc's socket (bearerbox had written them: their delivery reports
        say so), and a burst the bench stopped counting may still have MOs coming in: there
        the phone is not checked, and a counted MO not answered when the bench stopped
        waiting (past the SLA) is `unanswered`, not missing."""
        with self.system.connect() as conn:
            inbound, answered, missing_, duplicated, failed, resent = reports.integrity(
                conn, step.source)
            dead = reports.dead_letters_of(conn, step.source)
            # Delivery reports that came back through Kannel's dlr-url to the ingest.
            delivered = reports.delivered_of(conn, step.source)
        counted, after = self.counted(step)
        unanswered = 0
        if step.burst and (step.cut_at is not None or not step.drained):
            unanswered = sum(1 for r in counted if r[4] is None or r[5] < r[6])
            missing_ = 0
        phone_checked = not step.aborted and step.cut_at is None
        assert step.sender is not None
        return {"written": step.sender.sent, "inbound": inbound, "counted": len(counted),
                "answered": answered, "missing": missing_, "unanswered": unanswered,
                "duplicated": duplicated, "failed": failed, "resent": resent,
                "dead_letters": dead, "delivered": delivered, "replies_at_fakesmsc": step.replies,
                "phone_checked": phone_checked,
                "exactly_one_reply": bool(inbound and missing_ == 0 and duplicated == 0
                                          and failed == 0
                                          and (not phone_checked or step.replies == inbound))}

    def summary(self, step: Step) -> dict[str, Any]:
        """A step's figures: at fakesmsc over the window, and from PostgreSQL's rows."""
        sla = self.system.settings.sla_seconds
        rows, after = self.counted(step)
        latencies = [r[4] - r[1] if r[4] is not None else math.inf for r in rows]
        within = sum(1 for s in latencies if s <= sla)
        received = [r[1] for r in rows]
        # claimed -> sent of one-part replies: the transport's send, sendsms's answer in it
        sends = [r[4] - r[3] for r in rows if r[4] is not None and r[3] is not None
                 and r[6] == 1]
        assert step.sender is not None and step.cpu is not None
        cores = step.cpu["cores"]
        kannel = sum(cores.get(n, 0.0) for n in KANNEL_PROCESSES)
        gateway_cores = sum(v for n, v in cores.items()
                            if n not in (*KANNEL_PROCESSES, "bench", cpu.OTHER, cpu.STEAL))
        replies = step.replies_per_s()
        return {
            "offered_per_s": round(step.rate, 1), "mos": step.count, "aborted": step.aborted,
            "written_per_s": round(step.written_per_s(), 1),
            "replies_per_s": round(replies, 1), "backlog_growth": step.backlog_growth(),
            "window_s": round(step.last[0] - step.first[0], 1),
            "written": step.sender.sent, "accepted": len(rows),
            "accepted_after_cut": len(after),
            "not_accepted": max(step.sender.sent - len(rows) - len(after), 0),
            "replies_at_fakesmsc": step.replies,
            "within_sla": within, "late": len(rows) - within, "sla_s": sla,
            "sla_ok_ratio": round(within / len(rows), 4) if rows else None,
            "latency_s": stats([s for s in latencies if s != math.inf]),
            "unsent": sum(1 for s in latencies if s == math.inf),
            "send_s": stats(sends),
            "receipt_span_s": round(max(received) - step.sender.started, 1) if received else 0.0,
            "drained": step.drained, "drained_after_s": round(step.drained_s, 1),
            "smsbox": step.smsbox, "integrity": step.integrity,
            "cpu": step.cpu,
            "cpu_ms_per_reply": {
                "gateway": round(gateway_cores * 1000 / replies, 2),
                "kannel": round(kannel * 1000 / replies, 3),
                "machine": round(step.cpu["machine_busy_cores"] * 1000 / replies, 2),
            } if replies else {},
        }

    def integrity(self) -> dict[str, Any]:
        """The steps' integrity together."""
        parts = [s.integrity for s in self.steps]
        total = {key: sum(p[key] for p in parts) for key in
                 ("written", "inbound", "counted", "answered", "missing", "unanswered",
                  "duplicated", "failed", "resent", "dead_letters", "delivered",
                  "replies_at_fakesmsc")}
        phone = [s for s in self.steps if s.integrity["phone_checked"]]
        return {**total, "phone_checked_steps": [s.name for s in phone],
                "phone_checked_replies": sum(s.replies for s in phone),
                "phone_checked_inbound": sum(s.integrity["inbound"] for s in phone),
                "exactly_one_reply": bool(parts) and all(p["exactly_one_reply"] for p in parts)}


_NUMBERS = re.compile(rb"\d+")
_QUOTED = re.compile(rb"<[^>]*>|https?://\S+")  # URLs carry the bridge token: never kept


def _smsbox_counts(path: Path) -> dict[str, Any]:
    """What smsbox logged of its trouble: its error and warning lines, the most frequent by
    message (numbers, URLs and quoted values taken out)."""
    text = read_from(path, 0)
    kinds: dict[str, int] = {}
    for line in text.splitlines():
        for level in (b"ERROR: ", b"WARNING: "):
            at = line.find(level)
            if at >= 0:
                message = _NUMBERS.sub(b"N", _QUOTED.sub(b"<>", line[at:]))[:120]
                key = message.decode("utf-8", "replace")
                kinds[key] = kinds.get(key, 0) + 1
    top = dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:5])
    return {"error_lines": text.count(b"] ERROR: "), "warning_lines": text.count(b"] WARNING: "),
            "messages": top}


def measure_through_kannel(seconds: float, rate: float, *, redis_url: str | None = None,
                           database_url: str | None = None, persons: int = 20_000,
                           log: Any = print) -> dict[str, Any]:
    """The gateway driven through Kannel as deployed: figures and details (module docstring).

    `rate`: where the steady steps start, the rate the gateway sustained with the file
    transport in this run."""
    d = through_durations(seconds)
    deployed = Deployed.read()
    user = deployed.get("sendsms-user", "username", "govsms")
    password = secrets.token_urlsafe(18)
    ports = Ports.free()

    def transport(settings: Settings) -> str:
        dlr = (f"{settings.ingest_url}/sms/dlr?token={settings.secret()}"
               "&outbound={outbound_id}&type=%d")
        return (f"kannel+http://{user}:{password}@127.0.0.1:{ports.sendsms}/cgi-bin/sendsms"
                f"?dlr-url={quote(dlr, safe='')}")

    with scratch_folder("govsms-bench-kannel-") as folder, gateway(
            redis_url=redis_url, database_url=database_url, persons=persons, log=log,
            transport=transport) as system:
        through = Through(system, folder, ports, deployed, password, persons=persons, log=log)
        checks: list[dict[str, Any]] = []
        held, sustained = False, 0.0
        offered = max(rate, 1.0)
        for n in range(1, STEPS + 1):
            step = through.run(f"steady{n}", rate=offered, seconds=d["window"],
                               warmup=d["warmup"], abort=True, drain_cap=d["drain_cap"])
            summary = through.summary(step)
            ok = (not step.aborted and summary["replies_per_s"] >= 0.95 * summary["written_per_s"]
                  and summary["backlog_growth"] <= max(offered, 5))
            checks.append({**summary, "held": ok})
            log(f"  through Kannel at {offered:,.0f}/s: {summary['replies_per_s']:,.1f} replies/s"
                f" at fakesmsc, backlog {summary['backlog_growth']:+d}"
                f"{' (stopped early)' if step.aborted else ''} -> "
                f"{'held' if ok else 'did not hold'}; {summary['late']} past the SLA")
            if ok:
                held, sustained = True, min(summary["replies_per_s"], offered)
                break
            sustained = summary["replies_per_s"]
            offered = max(min(max(STEP_DOWN * offered, 0.95 * sustained), 0.95 * offered), 1.0)
        burst_rate = BURST_FACTOR * max(sustained, 1.0)
        step = through.run("burst", rate=burst_rate, seconds=d["burst"], warmup=0.0,
                           feed_cap=d["burst_feed_cap"], drain_cap=d["drain_cap"])
        burst = through.summary(step)
        log(f"  burst through Kannel {burst_rate:,.0f}/s for {d['burst']:.0f} s: "
            f"{burst['sla_ok_ratio'] or 0:.1%} of {burst['accepted']:,} accepted answered "
            f"within {burst['sla_s']:.0f} s, {burst['not_accepted']:,} not accepted "
            f"({step.drained_s:.0f} s after)")
        integrity = through.integrity()
        processes = [n for n in system.roots if n not in ("redis", "postgres")]
    steady = checks[-1]
    return {
        "figures": {
            "kannel_e2e_msgs_per_s": round(sustained, 1) if sustained > 0 else None,
            "kannel_burst_sla_ok_ratio": burst["sla_ok_ratio"],
        },
        "details": {
            "durations_s": d, "started_at_per_s": round(max(rate, 1.0), 1), "held": held,
            "steady_checks": checks, "late": steady["late"], "burst": burst,
            "burst_factor": BURST_FACTOR, "integrity": integrity,
            "abort_backlog_s": ABORT_BACKLOG_S, "step_down": STEP_DOWN,
            "kannel_settings": {key: deployed.get("smsbox", key) for key in
                                ("http-request-retry", "http-queue-delay", "mo-recode")},
            "mo_lines": len(through.lines), "processes": processes,
        },
    }
