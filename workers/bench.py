"""`govsms bench` (what `make bench` runs): measured figures, printed and written to docs/.

Measured so far: the parser alone on one core, and the broker's own ceiling
(unpipelined LPUSH+RPOP on a private Redis started for the run). Performance is
measured here, never asserted in a timed unit test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from parsers.bench import measure as measure_parser
from workers import embedded

TARGETS = {"parser_msgs_per_s": ">= 50,000 on one core"}


def measure_broker(seconds: float = 2.0) -> float:
    """Unpipelined LPUSH+RPOP pairs per second on a private Redis, counted as two operations."""
    folder = Path(tempfile.mkdtemp(prefix="govsms-bench-"))
    spec = embedded.redis_spec(folder)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        embedded.wait_ready(spec, lambda: server.poll() is None)
        client = redis.Redis.from_url(spec.url)
        operations, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                client.lpush("bench", b"x" * 200)
                client.rpop("bench")
            operations += 200
        return operations / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def _versions() -> dict[str, str]:
    names = ("celery", "kombu", "redis", "psycopg", "fastapi", "uvicorn")
    return {"python": platform.python_version(), **{n: metadata.version(n) for n in names}}


def run(seconds: float, out: Path) -> dict[str, Any]:
    """Measure, print a table, write `out/benchmarks.json` and `out/benchmarks.md`."""
    figures: dict[str, Any] = {
        "parser_msgs_per_s": round(measure_parser(seconds)["parser_msgs_per_s"]),
        "broker_ops_per_s": round(measure_broker(seconds)),
    }
    report = {"measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "cores": os.cpu_count(), "machine": platform.machine(),
              "versions": _versions(), "seconds_per_figure": seconds, **figures}
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(f"| `{key}` | {value:,} | {TARGETS.get(key, 'reported')} |"
                     for key, value in figures.items())
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    (out / "benchmarks.md").write_text(f"""# Benchmarks

Written by `make bench` ({report['measured_at']}) on {report['cores']} cores
({report['machine']}); {versions}.

| figure | measured | target |
|---|---|---|
{rows}

- `parser_msgs_per_s`: `KeywordIndex.parse` alone, one process, over a mix of every
  service in every script with about 10% malformed texts (`parsers/bench.py`).
- `broker_ops_per_s`: a private Redis's own ceiling in this run, unpipelined
  LPUSH+RPOP of 200-byte messages from one client, each counted as one operation.

The end-to-end figures (ingest to reply, latency, SLA under burst) are not
measured yet.
""")
    print(f"{'figure':<22}{'measured':>14}  target", file=sys.stdout)
    for key, value in figures.items():
        print(f"{key:<22}{value:>14,}  {TARGETS.get(key, 'reported')}")
    return report
