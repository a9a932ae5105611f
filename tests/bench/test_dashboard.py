"""How the dashboard's drawing reads Grafana's units, thresholds and legend formats."""

from __future__ import annotations

import math

import pytest

from bench.dashboard import Series, fmt, legend, threshold_color

SLA_THRESHOLDS = {"thresholds": {"steps": [{"color": "red", "value": None},
                                           {"color": "orange", "value": 0.95},
                                           {"color": "green", "value": 0.99}]}}


@pytest.mark.parametrize(("value", "unit", "decimals", "shown"), [
    (0.9987, "percentunit", 2, "99.87%"),
    (0.095, "s", None, "95 ms"),
    (4.97, "s", None, "4.97 s"),
    (12.5, "reqps", None, "12.5 req/s"),
    (0.0, "ops", None, "0 ops/s"),
    (1234.0, "none", None, "1,234"),
    (math.inf, "s", None, "+Inf"),  # a quantile past the last bucket
    (math.nan, "s", None, "No data"),
    (None, "reqps", None, "No data"),
])
def test_values_are_shown_in_the_panels_unit(value, unit, decimals, shown):
    assert fmt(value, unit, decimals) == shown


@pytest.mark.parametrize(("value", "color"), [
    (0.5, "#f2495c"), (0.95, "#ff9830"), (0.9899, "#ff9830"), (0.99, "#73bf69"),
    (None, "#f2495c"),
])
def test_a_stat_takes_the_colour_of_the_last_threshold_it_reaches(value, color):
    assert threshold_color(value, SLA_THRESHOLDS) == color


@pytest.mark.parametrize(("fmt_", "metric", "name"), [
    ("{{shortcode}} {{service}}", {"shortcode": "1414", "service": "housing_queue"},
     "1414 housing_queue"),
    ("sent {{ outcome }}", {"outcome": "found"}, "sent found"),
    ("", {"__name__": "up", "job": "govsms"}, "job=govsms"),
    ("", {}, "A"),
])
def test_series_are_named_by_the_legend_format(fmt_, metric, name):
    assert legend(fmt_, metric, "A") == name


def test_the_peak_of_a_series_ignores_what_is_not_finite():
    series = Series("p99", [1.0, 2.0, 3.0], [0.2, math.inf, math.nan])
    assert series.peak() == 0.2
    assert series.last() == math.inf


def test_a_stat_whose_value_is_past_the_last_bucket_still_draws():
    """A p95 beyond the histogram's last bound is +Inf: the panel shows it, the drawing goes on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.dashboard import _stat

    fig, frame = plt.subplots()
    try:
        _stat(frame, [Series("p95", [1.0, 2.0, 3.0], [0.2, 0.4, math.inf])], {"unit": "s"})
        fig.canvas.draw()
        assert [t.get_text() for t in frame.texts] == ["+Inf"]
        assert all(math.isfinite(v) for v in frame.get_ylim())
    finally:
        plt.close(fig)
