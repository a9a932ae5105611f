"""The bench runs, and its traffic is the realistic mix it claims to be."""

from __future__ import annotations

from collections import Counter

from bench.parser import measure, sample_traffic
from tests.support.parser_cases import default_index


def test_measure_reports_the_figures() -> None:
    figures = measure(0.05)
    assert figures["messages"] > 0 and figures["parser_msgs_per_s"] > 0


def test_traffic_has_every_service_and_one_in_ten_malformed() -> None:
    index = default_index()
    traffic = sample_traffic()
    results = [index.parse(shortcode, text) for shortcode, text in traffic]
    services = Counter(result.service for result in results)
    assert {"tech_inspection", "kindergarten_queue", "housing_queue",
            "account_registration", None} <= set(services)
    malformed = sum(1 for result in results if "error" in result.as_dict())
    assert 0.07 <= malformed / len(results) <= 0.15
    scripts = Counter("cyrillic" if any("а" <= c.lower() <= "я" for c in text) else "latin"
                      for _, text in traffic)
    assert scripts["cyrillic"] > 0.2 * len(traffic) and scripts["latin"] > 0.2 * len(traffic)
    assert sample_traffic() == traffic  # the same mix every run
