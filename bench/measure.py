"""`python -m bench` (what `make bench` runs): measured figures, printed and written to docs/.

Five parts:

- the parser alone on one core (`bench/parser.py`);
- the broker's own ceiling (unpipelined LPUSH+RPOP on a private Redis,
  `bench/baseline.py`);
- the pipeline's steps called in one process (no HTTP, no broker), batches of 1 and 50
  (`bench/baseline.py`);
- the whole gateway end to end on this machine (`bench/gateway.py`): private Redis and
  PostgreSQL in a temporary folder (or the configured ones, GOVSMS_REDIS_URL /
  GOVSMS_DATABASE_URL), the migrations, the demo dataset, and the processes
  `workers.local.gateway.processes()` lists (ingest, inbound, one worker per service, outbound,
  bulk...; not beat or flower) with the file transport, driven over HTTP by the load
  generator (bench/loadgen.py), a process of its own;
- Kannel: Debian's Kannel alone flat out, and a second start of the gateway driven through
  it as deployed, fakesmsc playing the phones (`bench/kannel/`: peers, ceiling, through).

The end-to-end phases (`bench/phases.py`), each tagged by the `smsc` link of its messages
so the figures come from the rows PostgreSQL recorded:

1. `saturate`: closed loop, `WINDOW` messages in flight from post to reply, so the
   gateway runs flat out with a bounded backlog; the rate of replies over a steady
   window after a warm-up is the capacity estimate.
2. `sustain`: open loop (Poisson arrivals) at that rate; it holds when the replies
   keep pace (>= 95% of the rate the ingest accepted) and the backlog does not grow by
   more than a second of traffic over the window; else 10% lower, twice at most. The
   rate that held is `e2e_msgs_per_s`.
3. `half`: open loop at half that rate: received -> sent latency over a steady
   window, with the Celery task events captured to split it into stages.
4. `burst`: open loop at 3x that rate for 12 x `seconds`, 60 s at most and by default (as
   long as the SLA: the burst after a TV announcement), then drained: the share of
   replies sent within the SLA of receipt.
5. `flower`: `saturate` again with Flower running (after the burst), as `govsms run` starts
   it: it turns the workers' task events on, and every task then sends three.

CPU comes from /proc/<pid>/stat of each process tree (PostgreSQL backends attributed
to the process at the other end of their socket, `bench/cpu.py`), queue depths from Redis.

Performance is measured here, never asserted in a timed unit test.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import time
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench import kannel
from bench import report as written
from bench.baseline import measure_broker, measure_pipeline
from bench.cpu import OTHER, STEAL, cpu_between, machine_busy
from bench.gateway import System, gateway
from bench.parser import measure as measure_parser
from bench.phases import CONNECTIONS, WINDOW, Bench, quantile, stats
from bench.profile import stage_profile, tasks_started
from workers.messages import reports

BURST_FACTOR = 3.0
BURST_S = 60.0  # as long as the SLA
FLOWER_SETTLE_S = 5.0


def _durations(seconds: float) -> dict[str, float]:
    """Phase lengths for `seconds` (the default 5 keeps `make bench` within about 6 minutes)."""
    warmup = max(seconds, 1.0)
    return {"warmup": warmup, "saturate": 4 * seconds, "sustain": 2 * seconds,
            "half": 4 * seconds, "burst": min(12 * seconds, BURST_S), "inproc": seconds,
            "drain_cap": 3 * min(12 * seconds, BURST_S) + 60}


def measure_e2e(seconds: float, *, redis_url: str | None = None, database_url: str | None = None,
                persons: int = 20_000, log: Any = print) -> dict[str, Any]:
    """The end-to-end figures, their details and the profile (see the module's docstring)."""
    d = _durations(seconds)
    with gateway(redis_url=redis_url, database_url=database_url, persons=persons,
                 log=log) as system:
        bench = Bench(system, persons=persons, log=log)
        sla = system.settings.sla_seconds
        quiet = system.snapshot()
        time.sleep(max(1.0, seconds / 2))
        idle = cpu_between(quiet, system.snapshot())
        inproc = [measure_pipeline(system, d["inproc"], persons=persons, batch=batch)
                  for batch in (1, 50)]
        for one in inproc:
            log(f"  pipeline in one process, batches of {one['batch']}: {one['msgs_per_s']:,.0f}"
                f" msgs/s ({one['python_cpu_ms_per_msg']:.1f} ms Python + "
                f"{one['postgres_cpu_ms_per_msg']:.1f} ms PostgreSQL CPU each)")

        saturate = bench.phase("saturate", "window", warmup=d["warmup"], window=d["saturate"])
        bench.drain(60)
        sat_messages = bench.messages(saturate)
        capacity = bench.completion_rate(saturate, sat_messages)
        tasks = tasks_started(system.folder / "logs", saturate.window_start, saturate.window_end)
        per_task = {name: round(capacity * saturate.window / n, 1)
                    for name, n in sorted(tasks.items()) if n}
        log(f"  saturate (closed loop, {WINDOW} in flight): {capacity:,.0f} replies/s")

        checks = []
        sustained, held = capacity, False
        for factor in (1.0, 0.9, 0.8):
            rate = max(capacity * factor, 1.0)
            run = bench.phase(f"sustain{len(checks) + 1}", "open", rate=rate,
                              warmup=d["warmup"], window=d["sustain"])
            msgs = bench.messages(run)
            bench.drain(60)
            completed, accepted = bench.completion_rate(run, msgs), bench.offered_rate(run)
            growth = bench.backlog(msgs, run.window_end) - bench.backlog(msgs, run.window_start)
            ok = completed >= 0.95 * accepted and growth <= max(rate * 1.0, 5)
            checks.append({"offered_per_s": round(rate, 1), "accepted_per_s": round(accepted, 1),
                           "completed_per_s": round(completed, 1), "backlog_growth": growth,
                           "held": ok})
            log(f"  sustain at {rate:,.0f}/s (open loop): {completed:,.0f} replies/s, "
                f"backlog {growth:+d} -> {'held' if ok else 'did not hold'}")
            if ok:
                sustained, held = min(completed, rate), True
                break
        if not held:  # the reply rate of the last step, offered more than it took
            sustained = checks[-1]["completed_per_s"]

        half = bench.phase("half", "open", rate=sustained / 2, warmup=d["warmup"],
                           window=d["half"], events=True)
        bench.drain(60)
        half_messages = bench.messages(half)
        steady = [m.sent - m.received for m in half_messages
                  if half.window_start <= m.received < half.window_end and m.sent is not None]
        unsent_half = sum(1 for m in half_messages
                          if half.window_start <= m.received < half.window_end and m.sent is None)
        profile = stage_profile(half, half_messages)
        log(f"  half load {sustained / 2:,.0f}/s: p50 {quantile(steady, .5) or 0:.3f} s, "
            f"p99 {quantile(steady, .99) or 0:.3f} s")

        burst_rate = BURST_FACTOR * sustained
        burst = bench.phase("burst", "open", rate=burst_rate, warmup=0.0, window=d["burst"])
        drained = bench.drain(d["drain_cap"])
        burst_messages = bench.messages(burst)
        latencies = [m.sent - m.received if m.sent is not None else math.inf
                     for m in burst_messages]
        ok = sum(1 for s in latencies if s <= sla)
        burst_ratio = ok / len(latencies) if latencies else 0.0
        # The ingest may take less than offered: then the bridge holds the rest back and the
        # burst reaches the gateway over a longer span, at the rate the ingest takes.
        accepted_ends = [r[2] for r in burst.loadgen["records"] if r[3] == 202]
        receipt_span = max(max(accepted_ends, default=burst.start) - burst.start, d["burst"], 1e-9)
        burst_accepted = len(accepted_ends) / receipt_span
        offered_at = {r[4]: r[0] for r in burst.loadgen["records"] if r[3] == 202}
        abandoned = sum(1 for r in burst.loadgen["records"] if r[3] == "abandoned")
        from_offer = [m.sent - offered_at[m.id] if m.sent is not None else math.inf
                      for m in burst_messages if m.id in offered_at]
        burst_drain_rate = len(burst_messages) / max(
            max((m.sent for m in burst_messages if m.sent), default=burst.start) - burst.start,
            1e-9)
        log(f"  burst {burst_rate:,.0f}/s for {d['burst']:.0f} s: {burst_ratio:.1%} within "
            f"{sla:.0f} s (drained {drained:.0f} s after)")

        # The same closed loop as `saturate`, with Flower watching as `govsms run` starts it.
        system.start_flower()
        time.sleep(FLOWER_SETTLE_S)  # it turns the workers' events on once connected
        watched = bench.phase("flower", "window", warmup=d["warmup"], window=d["saturate"])
        bench.drain(60)
        with_flower = bench.completion_rate(watched, bench.messages(watched))
        log(f"  saturate with Flower watching: {with_flower:,.0f} replies/s "
            f"(without: {capacity:,.0f})")

        integrity = _integrity(bench)
        versions = _server_versions(system)

    return {
        "figures": {
            "e2e_msgs_per_s": round(sustained, 1),
            "p50_latency_s_at_half_load": _round(quantile(steady, 0.5)),
            "p95_latency_s_at_half_load": _round(quantile(steady, 0.95)),
            "p99_latency_s_at_half_load": _round(quantile(steady, 0.99)),
            "burst_sla_ok_ratio": round(burst_ratio, 4),
            **_cpu_figures(saturate.cpu, capacity),
            "e2e_msgs_per_s_with_flower": round(with_flower, 1),
        },
        "details": {
            "method": "closed-loop saturation, then open-loop confirmation stepping down 10%",
            "window_in_flight": WINDOW, "loadgen_connections": CONNECTIONS,
            "durations_s": d, "persons": persons,
            "processes": [n for n in system.roots if n not in ("redis", "postgres")],
            "idle_cpu": idle, "inproc": inproc,
            "cpu_ms_per_msg_saturated": {
                name: round(cores * 1000 / capacity, 2)
                for name, cores in (saturate.cpu or {}).get("cores", {}).items()} | {
                "machine": round(saturate.cpu["machine_busy_cores"] * 1000 / capacity, 2)}
            if capacity and saturate.cpu else {},
            "saturate": {"completed_per_s": round(capacity, 1),
                         "accepted_per_s": round(bench.offered_rate(saturate), 1),
                         "queues_mean_depth": saturate.queues, "cpu": saturate.cpu,
                         "messages_per_task": per_task,
                         "http_accept_s": stats([r[2] - r[1] for r in saturate.loadgen["records"]
                                                  if r[3] == 202 and saturate.window_start
                                                  <= r[1] < saturate.window_end]),
                         "kinds": saturate.loadgen["kinds"]},
            "sustain_checks": checks, "sustained_held": held,
            "half": {"offered_per_s": round(sustained / 2, 1),
                     "accepted_per_s": round(bench.offered_rate(half), 1),
                     "messages_in_window": len(steady) + unsent_half,
                     "unsent_in_window": unsent_half,
                     "latency_s": stats(steady), "queues_mean_depth": half.queues,
                     "cpu": half.cpu, "profile": profile,
                     "http_accept_s": stats([r[2] - r[1] for r in half.loadgen["records"]
                                              if r[3] == 202 and half.window_start <= r[1]
                                              < half.window_end])},
            "flower": {"saturated_per_s": round(with_flower, 1),
                       "saturated_without_per_s": round(capacity, 1), "cpu": watched.cpu},
            "burst": {"offered_per_s": round(burst_rate, 1),
                      "accepted_per_s": round(burst_accepted, 1),
                      "receipt_span_s": round(receipt_span, 1),
                      # a message the bridge gave up on counts as late from its offer
                      "abandoned": abandoned,
                      "sla_ok_ratio_from_offer": round(
                          sum(1 for s in from_offer if s <= sla) / (len(from_offer) + abandoned), 4)
                      if from_offer else 0.0,
                      "seconds": d["burst"],
                      "messages": len(burst_messages), "within_sla": ok, "sla_s": sla,
                      "latency_s": stats([s for s in latencies if s != math.inf]),
                      "unsent": sum(1 for s in latencies if s == math.inf),
                      "client_lag_s": stats([r[1] - r[0] for r in burst.loadgen["records"]]),
                      "drain_rate_per_s": round(burst_drain_rate, 1),
                      "cpu": burst.cpu},
            "integrity": integrity,
            "server_versions": versions,
        },
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _integrity(bench: Bench) -> dict[str, Any]:
    """Every message exactly one reply: PostgreSQL's rows and the transport's outbox agree."""
    with bench.system.connect() as conn:
        inbound, answered, missing, duplicated, failed, resent = reports.integrity(
            conn, f"{bench.tag}-%")
        ours = reports.inbound_ids(conn, f"{bench.tag}-%")
        dead = reports.dead_letters_of(conn, f"{bench.tag}-%")
    parts_sent: Counter = Counter()
    inbound_sent: dict[int, set] = defaultdict(set)
    if bench.system.outbox.exists():
        with bench.system.outbox.open() as f:
            for line in f:
                sms = json.loads(line)
                if sms.get("inbound_id") in ours:
                    parts_sent[sms["outbound_id"]] += 1
                    inbound_sent[sms["inbound_id"]].add(sms["outbound_id"])
    posted = sum(p.loadgen["posted"] for p in bench.phases)
    accepted = sum(p.loadgen["accepted"] for p in bench.phases)
    errors: Counter = Counter()
    for p in bench.phases:
        errors.update(p.loadgen["errors"])
    return {"posted": posted, "accepted": accepted, "http_errors": dict(errors),
            "inbound": inbound, "answered": answered, "missing": missing,
            "duplicated": duplicated, "failed": failed, "resent": resent,
            "dead_letters": dead, "outbox_replies": len(inbound_sent),
            "outbox_missing": len(ours - set(inbound_sent)),
            "outbox_duplicate_sms": sum(1 for n in parts_sent.values() if n > 1),
            "exactly_one_reply": bool(inbound == accepted and missing == 0 and duplicated == 0
                                      and len(inbound_sent) == inbound
                                      and all(n == 1 for n in parts_sent.values()))}


def _server_versions(system: System) -> dict[str, str]:
    found = {}
    try:
        found["redis-server"] = system.redis().info("server")["redis_version"]
    except redis.RedisError:
        pass
    try:
        with system.connect() as conn:
            found["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        pass
    return found



# Processes on the machine that are not the gateway's: the bridge stands in elsewhere.
NOT_GATEWAY = ("loadgen", "bench", OTHER, STEAL)


def _cpu_figures(cpu: dict[str, Any] | None, rate: float) -> dict[str, float | None]:
    """CPU per reply at saturation: every gateway process with its PostgreSQL backends, Redis
    and the kernel's handling of their traffic; and the load generator's own."""
    if not cpu or not rate:
        return {"gateway_cpu_ms_per_msg": None, "loadgen_cpu_ms_per_msg": None}
    cores = cpu["cores"]
    gateway = sum(v for name, v in cores.items() if name not in NOT_GATEWAY)
    return {"gateway_cpu_ms_per_msg": round(gateway * 1000 / rate, 2),
            "loadgen_cpu_ms_per_msg": round(cores.get("loadgen", 0.0) * 1000 / rate, 3)}


def run(seconds: float, out: Path, *, redis_url: str | None = None,
        database_url: str | None = None, persons: int = 20_000) -> dict[str, Any]:
    """Measure, print a table, write `out/benchmarks.json` and `out/benchmarks.md`."""
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True)

    log("parser and broker")
    figures: dict[str, Any] = {
        "parser_msgs_per_s": round(measure_parser(seconds)["parser_msgs_per_s"]),
        "broker_ops_per_s": round(measure_broker(seconds)),
    }
    busy = machine_busy()
    time.sleep(1.0)
    busy_before = (machine_busy()[0] - busy[0]) / 1.0
    if busy_before > 0.25:
        log(f"warning: the machine is busy before the run ({busy_before:.2f} cores in use): "
            f"the figures will be lower than on a quiet machine")
    log("end to end")
    e2e = measure_e2e(seconds, redis_url=redis_url, database_url=database_url, persons=persons,
                      log=log)
    figures.update(e2e["figures"])
    figures["e2e_to_broker_ratio"] = round(figures["e2e_msgs_per_s"] / figures["broker_ops_per_s"],
                                           5)
    details = e2e["details"]
    log("Kannel")
    through = kannel.measure(seconds, e2e_rate=figures["e2e_msgs_per_s"], redis_url=redis_url,
                             database_url=database_url, persons=persons, log=log)
    figures.update(through["figures"])
    figures["e2e_to_kannel_ratio"] = kannel.ratio(figures["e2e_msgs_per_s"],
                                                  figures["kannel_ceiling_msgs_per_s"])
    details["kannel"] = through["details"]
    report = {"measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "cores": os.cpu_count(), "machine": platform.machine(),
              "cpu_model": _cpu_model(),
              "versions": {**_versions(), **details.pop("server_versions")},
              "seconds_per_figure": seconds,
              "machine_busy_cores_before": round(busy_before, 2),
              "burst_seconds": details["burst"]["seconds"],
              "burst_factor": BURST_FACTOR,
              "exactly_one_reply": details["integrity"]["exactly_one_reply"],
              "duplicates": details["integrity"]["duplicated"]
              + details["integrity"]["outbox_duplicate_sms"],
              "missing": details["integrity"]["missing"],
              **figures, "details": details,
              "bench_wall_s": round(time.monotonic() - started, 1)}
    written.write(report, list(figures), out)
    return report


def _versions() -> dict[str, str]:
    names = ("celery", "kombu", "redis", "psycopg", "fastapi", "uvicorn", "httpx")
    return {"python": platform.python_version(), **{n: metadata.version(n) for n in names}}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
