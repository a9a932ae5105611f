"""Kannel alone flat out: its own MO -> MT ceiling on this machine."""

from __future__ import annotations

import math
import time
from typing import Any

from bench import cpu
from bench.kannel.peers import (
    Boxes, KANNEL_PROCESSES, PROBE_MOS, Ports, boxes, cpu_seconds, mo_lines, scratch_folder,
    static_config,
)
from bench.loadgen import Traffic


def ceiling_durations(seconds: float) -> dict[str, float]:
    """The ceiling's warm-up and window for `seconds` (5: 1.25 s and 10 s)."""
    return {"warmup": min(max(seconds / 4, 0.5), 2.0), "window": max(2 * seconds, 1.0)}


def measure_ceiling(seconds: float, *, log: Any = print) -> dict[str, Any]:
    """Kannel on its own flat out: figures and details (see the module's docstring).

    N is sized from the probe's rate; should Kannel then run so much faster that its queue
    empties before the window is half over (the probe caught a slow moment), the run is made
    once more with N from the rate it had."""
    d = ceiling_durations(seconds)
    lines = mo_lines(Traffic(seed=4242, persons=300), 500)
    runs: list[dict[str, Any]] = []
    with scratch_folder("govsms-bench-kannel-") as folder:
        with boxes(folder, lambda ports: static_config(folder, ports), Ports.free()) as k:
            probe = k.phone("probe", lines, count=PROBE_MOS)
            while probe.read()[2] < PROBE_MOS:
                if time.time() - probe.started > 30:
                    raise RuntimeError(f"bench: Kannel answered {probe.replies} of {PROBE_MOS} "
                                       f"probe MOs in 30 s; see {folder}")
                time.sleep(0.02)
            probe.stop()
            probe_rate = _steady_rate(probe.samples, PROBE_MOS)
            estimate = probe_rate
            for attempt in range(2):
                count = math.ceil(estimate * (d["warmup"] + d["window"]) * 1.15)
                run = _flat_out(k, lines, count, d, f"ceiling{attempt + 1}")
                runs.append(run)
                if run["unreliable"] is None or not run["drained"] or attempt:
                    break
                estimate = max(2 * estimate, run["mos"] / max(run["drain_s"], 1e-3))
    run = runs[-1]
    reliable = run["unreliable"] is None
    log(f"  Kannel alone (static text, fakesmsc at full speed): {run['rate']:,.0f} replies/s "
        f"over {run['window_s']:.1f} s, {run['cpu_ms']:.3f} ms of CPU each"
        f"{'' if reliable else ' (not reliable: ' + run['unreliable'] + ')'}")
    return {
        "figures": {
            "kannel_ceiling_msgs_per_s": round(run["rate"]) if reliable else None,
            "kannel_cpu_ms_per_msg": round(run["cpu_ms"], 4) if reliable else None,
        },
        "details": {"durations_s": d, "probe_mos": PROBE_MOS,
                    "probe_replies_per_s": round(probe_rate), "runs": len(runs),
                    **{k: v for k, v in run.items() if k not in ("rate", "cpu_ms")}},
    }


def _flat_out(k: Boxes, lines: list[str], count: int, d: dict[str, float],
              name: str) -> dict[str, Any]:
    """One fakesmsc run of `count` MOs at full speed: the window's replies and the whole run's
    CPU per reply."""
    phone = k.phone(name, lines, count=count)
    start = cpu.trees(k.roots)
    start.groups["fakesmsc"] = 0.0  # a new process: all its CPU is this run's
    while time.time() < phone.started + d["warmup"]:
        phone.read()  # as it writes: when it had written them all
        time.sleep(0.05)
    first = phone.read()
    at_start = cpu.trees(k.roots)
    end_at = phone.started + d["warmup"] + d["window"]
    last = first
    while time.time() < end_at:  # the window ends early should Kannel near the end
        time.sleep(0.1)
        last = phone.read()
        if last[2] >= 0.97 * count:
            break
    at_end = cpu.trees(k.roots)
    while phone.read()[2] < count and time.time() < end_at + max(d["window"], 10):
        time.sleep(0.05)
    done = cpu.trees(k.roots)
    drain_s = time.time() - phone.started
    phone.stop()
    replies_at_end = phone.replies
    window = last[0] - first[0]
    replies = last[2] - first[2]
    drained = replies_at_end >= count
    used = cpu_seconds(start, done, KANNEL_PROCESSES)
    backlog = last[1] - last[2]
    unreliable = ("no reply in the window" if replies <= 0 else
                  "Kannel had no MO left waiting at the window's end (the figure would be low)"
                  if backlog <= 0 else
                  "Kannel's queue emptied before half the window" if window < d["window"] / 2
                  else "not every MO was answered" if not drained else None)
    return {
        "rate": replies / window if window > 0 else 0.0,
        "cpu_ms": used * 1000 / max(replies_at_end, 1),
        "mos": count, "replies": replies_at_end, "drained": drained,
        "drain_s": round(drain_s, 2), "window_s": round(window, 2),
        "replies_in_window": replies, "waiting_at_window_end": backlog,
        "mos_written_per_s": round(_write_rate(phone.samples, count)),
        "cpu_ms_per_reply_by_process": {
            n: round((done.groups.get(n, 0.0) - start.groups.get(n, 0.0)) * 1000
                     / max(replies_at_end, 1), 4) for n in KANNEL_PROCESSES},
        "cpu_in_window": cpu.cpu_between(at_start, at_end),
        "unreliable": unreliable,
    }


def _steady_rate(samples: list[tuple[float, int, int]], count: int) -> float:
    """Replies per second between 20% and 90% of `count` answered (the probe's steady part)."""
    low = next((s for s in samples if s[2] >= 0.2 * count), samples[0])
    high = next((s for s in samples if s[2] >= 0.9 * count), samples[-1])
    span = high[0] - low[0]
    if span <= 0 or high[2] <= low[2]:
        span, low = samples[-1][0] - samples[0][0], samples[0]
    return max((high[2] - low[2]) / max(span, 1e-3), 1.0)


def _write_rate(samples: list[tuple[float, int, int]], count: int) -> float:
    """How fast fakesmsc wrote its MOs: all `count` over the time to the first sample with
    them all (an upper bound on the time it took)."""
    done = next((s for s in samples if s[1] >= count), None)
    if done is None or len(samples) < 2:
        return 0.0
    return count / max(done[0] - samples[0][0] + 0.1, 1e-3)
