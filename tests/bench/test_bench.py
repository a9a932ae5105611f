"""`python -m bench` end to end with tiny durations: every figure is there and sane, every message
got exactly one reply. Nothing here asserts a speed; `make bench` measures, tests do not."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import kannel, loadgen
from bench import measure as bench
from tests.support.parser_cases import default_index
from tests.support.servers import claimed_redis_db
from workers.local.demo import every_row_in_every_keyword

KEYS = ("parser_msgs_per_s", "broker_ops_per_s", "e2e_msgs_per_s", "p50_latency_s_at_half_load",
        "p95_latency_s_at_half_load", "p99_latency_s_at_half_load", "burst_sla_ok_ratio",
        "e2e_to_broker_ratio", "cores", "versions", "burst_seconds", "exactly_one_reply",
        "duplicates", "missing", "measured_at", "details", "gateway_cpu_ms_per_msg",
        "loadgen_cpu_ms_per_msg", "e2e_msgs_per_s_with_flower", *kannel.FIGURES,
        "e2e_to_kannel_ratio")


def test_the_load_generator_sends_every_row_of_the_seed_tables() -> None:
    traffic = loadgen.Traffic(seed=2, persons=100)
    sent = {(sender, text) for sender, _, text, kind in
            (traffic.next() for _ in range(20_000)) if kind == "persona"}
    assert sent == {(persona.phone, text) for persona, text, _ in every_row_in_every_keyword()}


def test_the_traffic_is_the_mix_it_claims() -> None:
    traffic = loadgen.Traffic(seed=1, persons=200)
    sample = [traffic.next() for _ in range(4000)]
    index = default_index()
    kinds = Counter(kind for *_, kind in sample)
    assert 0.08 <= kinds["malformed"] / len(sample) <= 0.12
    for _, shortcode, text, kind in sample:
        if kind == "malformed":
            parsed = index.parse(shortcode, text).as_dict()
            assert "error" in parsed, text
    services = Counter(index.parse(code, text).service for _, code, text, _ in sample)
    assert {"tech_inspection", "kindergarten_queue", "housing_queue", "account_registration",
            None} <= set(services)
    cyrillic = sum(1 for _, _, text, _ in sample if any("а" <= c.lower() <= "я" for c in text))
    assert 0.2 * len(sample) < cyrillic < 0.8 * len(sample)
    assert loadgen.Traffic(seed=1, persons=200).next() == sample[0]  # the same for the same seed


@pytest.fixture
def fresh_redis(redis_server: str) -> Iterator[str]:
    with claimed_redis_db(redis_server) as url:
        yield url


@pytest.mark.e2e
@pytest.mark.timeout(210)
def test_a_tiny_bench_writes_every_figure(empty_database, fresh_redis, tmp_path: Path,
                                          monkeypatch) -> None:
    for name in [k for k in os.environ if k.startswith("GOVSMS_")]:
        monkeypatch.delenv(name)
    report = bench.run(0.3, tmp_path, redis_url=fresh_redis, database_url=empty_database,
                       persons=300)
    written = json.loads((tmp_path / "benchmarks.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert set(KEYS) <= set(written)
    assert written["cores"] == os.cpu_count()
    assert {"python", "celery", "redis", "psycopg", "postgresql", "redis-server"} <= set(
        written["versions"])
    assert written["parser_msgs_per_s"] > 0 and written["broker_ops_per_s"] > 0
    assert written["e2e_msgs_per_s"] > 0
    assert math.isclose(written["e2e_to_broker_ratio"],
                        written["e2e_msgs_per_s"] / written["broker_ops_per_s"], rel_tol=1e-2)
    latencies = [written[f"p{q}_latency_s_at_half_load"] for q in (50, 95, 99)]
    assert 0 < latencies[0] <= latencies[1] <= latencies[2] < 60
    assert 0 <= written["burst_sla_ok_ratio"] <= 1
    assert written["burst_seconds"] > 0

    integrity = written["details"]["integrity"]
    assert integrity["accepted"] == integrity["inbound"] > 0
    assert integrity["missing"] == integrity["duplicated"] == 0
    assert integrity["outbox_duplicate_sms"] == integrity["outbox_missing"] == 0
    assert written["exactly_one_reply"] is True

    details = written["details"]
    assert details["saturate"]["cpu"]["cores"]["ingest"] > 0
    assert details["saturate"]["messages_per_task"]["dispatch"] >= 1
    assert written["e2e_msgs_per_s_with_flower"] > 0 and written["gateway_cpu_ms_per_msg"] > 0
    assert 0 < written["loadgen_cpu_ms_per_msg"] < written["gateway_cpu_ms_per_msg"]
    assert details["half"]["profile"]["messages_traced"] > 0
    assert all(one["answered"] == one["messages"] > 0 for one in details["inproc"])
    markdown = (tmp_path / "benchmarks.md").read_text()
    for key in ("e2e_msgs_per_s", "p99_latency_s_at_half_load", "burst_sla_ok_ratio",
                "e2e_to_broker_ratio", "Where the CPU goes", *kannel.FIGURES,
                "e2e_to_kannel_ratio"):
        assert key in markdown

    if kannel.missing() is None:  # else each is None, and the text says why
        assert written["kannel_ceiling_msgs_per_s"] > 0 and written["kannel_cpu_ms_per_msg"] > 0
        assert written["kannel_e2e_msgs_per_s"] > 0
        assert 0 <= written["kannel_burst_sla_ok_ratio"] <= 1
        assert math.isclose(written["e2e_to_kannel_ratio"], written["e2e_msgs_per_s"]
                            / written["kannel_ceiling_msgs_per_s"], rel_tol=1e-2)
        through = details["kannel"]["through"]
        assert through["integrity"]["exactly_one_reply"] is True
        assert 0 < through["integrity"]["inbound"] <= through["integrity"]["written"]
        assert "## Through Kannel" in markdown
