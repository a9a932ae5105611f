"""deploy/ensure-servers says what `make test` and what `make run` will each use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "ensure-servers"


def _lines(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")}
    done = subprocess.run([str(SCRIPT)], env={**base, "PY": sys.executable, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    said = [line.removeprefix("ensure-servers: ") for line in done.stdout.splitlines()]
    return {line.split(" uses ")[0]: line.split(" uses ")[1] for line in said if " uses " in line}


def test_it_says_make_run_starts_its_own_servers_unless_urls_are_set(tmp_path):
    uses = _lines(GOVSMS_DATA_DIR=str(tmp_path))
    assert uses["make run"].startswith(f"its own PostgreSQL under {tmp_path}")
    assert f"; its own Redis under {tmp_path}" in uses["make run"]
    assert "PostgreSQL" in uses["make test"] and "Redis" in uses["make test"]
    configured = _lines(GOVSMS_DATABASE_URL="postgresql://db.example/govsms",
                        GOVSMS_REDIS_URL="redis://redis.example/0")
    assert configured["make run"] == ("the PostgreSQL of GOVSMS_DATABASE_URL; "
                                      "the Redis of GOVSMS_REDIS_URL")


def test_it_says_make_test_takes_the_configured_test_servers():
    uses = _lines(GOVSMS_TEST_DATABASE_URL="postgresql://db.example/postgres",
                  GOVSMS_TEST_REDIS_URL="redis://redis.example")
    assert uses["make test"] == ("the PostgreSQL of GOVSMS_TEST_DATABASE_URL; "
                                 "the Redis of GOVSMS_TEST_REDIS_URL")
