"""The Grafana dashboard drawn to a PNG from its own JSON and a real Prometheus.

`deploy/grafana/govsms-dashboard.json` is what operators import into Grafana. Grafana itself
is packaged neither for Debian nor for PyPI, so to put a picture of the dashboard in the
docs (and to check its queries in the tests) this module draws it: every panel's PromQL runs
against a Prometheus that scraped the ingest's `/metrics`, and matplotlib lays the panels out
on the dashboard's own 24-column grid, with its units, thresholds and legends.

`capture` runs the gateway (as `make bench` does) under a short load with a peak above its
capacity, has Debian's `prometheus` scrape it, and draws the dashboard over that run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "govsms-dashboard.json"
SCRAPE_S = 2.0
GRID_COLUMNS = 24
# Grafana's dark theme, near enough to be recognised.
BACKGROUND, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#ccccdc", "#8e8e9a"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a"]
COLORS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c", "yellow": "#fade2a",
          "blue": "#5794f2"}


class QueryError(RuntimeError):
    """Prometheus refused a panel's query."""


@dataclass
class Series:
    label: str
    times: list[float]
    values: list[float]

    def last(self) -> float | None:
        return next((v for v in reversed(self.values) if not math.isnan(v)), None)

    def peak(self) -> float | None:
        """The highest finite value (a quantile past the last bucket is +Inf)."""
        finite = [v for v in self.values if math.isfinite(v)]
        return max(finite) if finite else None


@dataclass
class Drawn:
    """What was drawn for one panel: the tests and the command line read it."""

    title: str
    kind: str
    series: list[Series] = field(default_factory=list)


class Prometheus:
    """The few calls of Prometheus' HTTP API the renderer needs."""

    def __init__(self, url: str, scrape_s: float = SCRAPE_S) -> None:
        self.url, self.scrape_s = url.rstrip("/"), scrape_s

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        expr = expr.replace("$__rate_interval", f"{self.rate_interval(step):.0f}s")
        response = httpx.get(f"{self.url}/api/v1/query_range", timeout=30, params={
            "query": expr, "start": start, "end": end, "step": step})
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def rate_interval(self, step: float) -> float:
        """Grafana's `$__rate_interval`: at least four scrapes, and a step plus one."""
        return max(4 * self.scrape_s, step + self.scrape_s)


def legend(fmt: str, metric: dict[str, str], fallback: str) -> str:
    """A series' name from the target's legend format (`{{label}}`) or its labels."""
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt).strip()
    labels = ", ".join(f"{k}={v}" for k, v in sorted(metric.items()) if k != "__name__")
    return labels or fallback


def fetch(prometheus: Prometheus, panel: dict, start: float, end: float,
          step: float) -> list[Series]:
    """Every series of every target of `panel` over [start, end]."""
    series = []
    for target in panel.get("targets", []):
        for result in prometheus.query_range(target["expr"], start, end, step):
            times = [float(t) for t, _ in result["values"]]
            values = [float(v) for _, v in result["values"]]
            name = legend(target.get("legendFormat", ""), result["metric"], target["refId"])
            series.append(Series(name, times, values))
    return series


def fmt(value: float | None, unit: str | None, decimals: int | None = None) -> str:
    """A value as Grafana shows it in `unit`."""
    if value is None or math.isnan(value):
        return "No data"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == "percentunit":
        return f"{value * 100:.{2 if decimals is None else decimals}f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit or "", "")
    digits = decimals if decimals is not None else (0 if value == int(value) else 1)
    return f"{value:,.{digits}f}{suffix}"


def threshold_color(value: float | None, defaults: dict) -> str:
    """The colour of the last threshold step `value` reaches (Grafana's absolute mode)."""
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is None or (value is not None and value >= step["value"]):
            color = step["color"]
    return COLORS.get(color, color)


def render(prometheus: Prometheus, start: float, end: float, out: Path,
           dashboard: Path = DASHBOARD) -> list[Drawn]:
    """Draw `dashboard` over [start, end] (Unix seconds) into the PNG `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = json.loads(dashboard.read_text())
    panels = spec["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + 2  # + the title
    fig = plt.figure(figsize=(GRID_COLUMNS * COLUMN_IN, rows * ROW_IN), facecolor=BACKGROUND)
    fig.text(0.006, 1 - 1 / rows, f"{spec['title']}    {_when(start):%Y-%m-%d %H:%M:%S} to "
             f"{_when(end):%H:%M:%S} UTC", color=TEXT, fontsize=15, va="center")
    step = max(prometheus.scrape_s, (end - start) / 400)
    drawn = []
    for panel in panels:
        x, y, w, h = (panel["gridPos"][k] for k in ("x", "y", "w", "h"))
        box = (x / GRID_COLUMNS + 0.003, 1 - (y + 2 + h - 0.1) / rows,
               w / GRID_COLUMNS - 0.006, (h - 0.2) / rows)
        if panel["type"] == "row":
            fig.text(box[0], box[1] + box[3] / 2, panel["title"], color=TEXT, fontsize=13,
                     weight="bold", va="center")
            drawn.append(Drawn(panel["title"], "row"))
            continue
        series = fetch(prometheus, panel, start, end, step)
        drawn.append(Drawn(panel["title"], panel["type"], series))
        frame = fig.add_axes(box, facecolor=PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for side in frame.spines.values():
            side.set_color("#2c3235")
        size = (w * COLUMN_IN, h * ROW_IN)
        frame.text(0.1 / size[0], 1 - 0.2 / size[1], panel["title"], transform=frame.transAxes,
                   color=TEXT, fontsize=10.5, va="center")
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if panel["type"] == "stat":
            _stat(frame, series, defaults)
        else:
            _timeseries(frame, size, series, defaults, (start, end))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor=BACKGROUND)
    plt.close(fig)
    return drawn


COLUMN_IN, ROW_IN = 0.75, 0.42  # a grid column's width, a grid row's height (inches)


def _when(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _stat(frame: Any, series: list[Series], defaults: dict) -> None:
    """The last value, coloured by the thresholds, over a sparkline (graphMode "area")."""
    value = series[0].last() if series else None
    color = threshold_color(value, defaults)
    if series and len(series[0].times) > 1:
        s = series[0]
        frame.fill_between(s.times, s.values, color=color, alpha=0.18, linewidth=0)
        frame.plot(s.times, s.values, color=color, linewidth=1, alpha=0.6)
        finite = [v for v in s.values if math.isfinite(v)] or [0.0]
        low, high = min(finite), max(finite)
        frame.set_ylim(low - (high - low or 1) * 0.1, high + (high - low or 1) * 1.6)
        frame.set_xlim(s.times[0], s.times[-1])
    frame.text(0.5, 0.45, fmt(value, defaults.get("unit"), defaults.get("decimals")),
               transform=frame.transAxes, ha="center", va="center", fontsize=26, color=color,
               weight="bold")


def _timeseries(frame: Any, size: tuple[float, float], series: list[Series], defaults: dict,
                span: tuple[float, float]) -> None:
    """Lines over the dashboard's time range, the legend below with last and max."""
    import matplotlib.dates as mdates

    unit = defaults.get("unit")
    columns = max(1, min(len(series), int(size[0] // 4.5)))
    legend_in = 0.1 + 0.17 * math.ceil(len(series) / columns)
    left, bottom, top = 0.85 / size[0], (legend_in + 0.3) / size[1], 1 - 0.45 / size[1]
    ax = frame.inset_axes([left, bottom, 1 - left - 0.15 / size[0], top - bottom])
    ax.set_facecolor(PANEL)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=8, length=0)
    ax.grid(color="#2c3235", linewidth=0.6)
    ax.set_xlim(_when(span[0]), _when(span[1]))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=max(4, int(size[0] / 1.4))))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(
        "%H:%M" if span[1] - span[0] > 900 else "%H:%M:%S"))
    ax.yaxis.set_major_formatter(lambda v, _: fmt(v, unit))
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        when = [_when(t) for t in s.times]
        ax.plot(when, s.values, color=color, linewidth=1.2, marker="o" if len(when) == 1 else "",
                label=f"{s.label}   last {fmt(s.last(), unit)}   max {fmt(s.peak(), unit)}")
        ax.fill_between(when, s.values, color=color, alpha=0.08, linewidth=0)
    ax.set_ylim(bottom=0, top=max([s.peak() or 0 for s in series] + [0]) * 1.1 or 1)
    if series:
        frame.legend(*ax.get_legend_handles_labels(), loc="lower left", fontsize=7.5,
                     frameon=False, labelcolor=TEXT, ncol=columns,
                     bbox_to_anchor=(0.1 / size[0], 0.02 / size[1]))
    else:
        ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", color=MUTED)


def prometheus_config(folder: Path, ingest_url: str, scrape_s: float = SCRAPE_S) -> Path:
    """A Prometheus configuration that scrapes the ingest's `/metrics`."""
    path = folder / "prometheus.yml"
    path.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": f"{scrape_s:.0f}s", "evaluation_interval": "15s"},
        "scrape_configs": [{"job_name": "govsms", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [urlsplit(ingest_url).netloc]}]}]}))
    return path


def prometheus_argv(binary: str, folder: Path, ingest_url: str, port: int) -> list[str]:
    """Debian's `prometheus` scraping the ingest, on a port and a data folder of its own."""
    return [binary, f"--config.file={prometheus_config(folder, ingest_url)}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]


def find_prometheus() -> str:
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not binary:
        raise RuntimeError("prometheus is not installed: `make dashboard` installs Debian's "
                           "package, or point --prometheus-url at one that scrapes the gateway")
    return binary


# (phase, offered messages a second, seconds): a steady morning, a peak above what two cores
# answer (the queues fill, then drain), a quiet tail.
LOAD = [("steady", 30.0, 0.35), ("peak", 160.0, 0.2), ("calm", 15.0, 0.45)]


def capture(out: Path, seconds: float = 180.0, log: Callable[[str], Any] = print) -> list[Drawn]:
    """Run the gateway under LOAD for `seconds`, scraped by Prometheus; draw the dashboard."""
    # Imported here: drawing from a given Prometheus needs none of the gateway's runtime.
    from bench.gateway import gateway, wait
    from bench.phases import Bench
    from workers.local.embedded import free_port
    from workers.local.supervisor import Child

    binary = find_prometheus()
    with gateway(persons=5_000, log=log) as system:
        folder = system.folder / "prometheus"
        folder.mkdir()
        port = free_port()
        argv = prometheus_argv(binary, folder, system.settings.ingest_url, port)
        system.supervisor.start(Child("prometheus", argv, system.folder / "logs" / "prom.log"))
        prometheus = Prometheus(f"http://127.0.0.1:{port}")
        wait(prometheus.ready, 30, "prometheus")
        load = Bench(system, persons=5_000, log=log)
        start = time.time()
        time.sleep(4 * SCRAPE_S)
        for name, rate, share in LOAD:
            log(f"  {name}: {rate:.0f} messages/s for {seconds * share:.0f} s")
            load.phase(name, "open", rate=rate, warmup=0.0, window=seconds * share)
        end = time.time()
        log(f"  drained in {load.drain(120):.0f} s")
        time.sleep(4 * SCRAPE_S)  # the last rate window scraped
        return render(prometheus, start, end, out)


@click.command()
@click.option("--out", default="docs/dashboard.png", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--seconds", default=180.0, show_default=True,
              help="How long to run the gateway under load, when no --prometheus-url is given")
@click.option("--prometheus-url", help="Draw from this Prometheus (scraping the gateway) instead")
@click.option("--since", default=3600.0, show_default=True,
              help="With --prometheus-url: how many seconds back from now to draw")
@click.option("--scrape-interval", default=30.0, show_default=True,
              help="With --prometheus-url: its scrape interval (sets $__rate_interval)")
def main(out: str, seconds: float, prometheus_url: str | None, since: float,
         scrape_interval: float) -> None:
    """Draw the Grafana dashboard (deploy/grafana) to a PNG from Prometheus' data."""
    if prometheus_url:
        drawn = render(Prometheus(prometheus_url, scrape_interval),
                       time.time() - since, time.time(), Path(out))
    else:
        drawn = capture(Path(out), seconds)
    for panel in drawn:
        if panel.kind != "row":
            click.echo(f"{panel.title:<42}{len(panel.series):>3} series")
    click.echo(f"written: {out}")


if __name__ == "__main__":
    main(prog_name="python -m bench.dashboard")
