"""Settings: the GOVSMS_ environment, defaults, and what `govsms run` leaves for other commands."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from workers.settings import (
    GENERATED_SECRETS,
    RUNTIME_FILE,
    InsecureSecret,
    NotAHash,
    Settings,
    check_password_hash,
    load_settings,
    secret_problem,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD = "configured-bridge-secret-0123456789abcdef"


def test_environment_prefix_and_json_values(monkeypatch, tmp_path):
    monkeypatch.setenv("GOVSMS_REDIS_URL", "redis://r:6379/2")
    monkeypatch.setenv("GOVSMS_DATABASE_URL", "postgresql://db/govsms")
    monkeypatch.setenv("GOVSMS_TRANSPORT", "kannel+http://u:p@k:13013/cgi-bin/sendsms")
    monkeypatch.setenv("GOVSMS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GOVSMS_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("GOVSMS_HTTP_PORT", "9090")
    monkeypatch.setenv("GOVSMS_SHORTCODES", '{"1414": ["housing_queue"]}')
    monkeypatch.setenv("GOVSMS_BRIDGE_ALLOW_IPS", "10.0.0.0/8, 192.0.2.7/32")
    s = Settings()
    assert (s.redis_url, s.database_url) == ("redis://r:6379/2", "postgresql://db/govsms")
    assert s.transport_url.startswith("kannel+http://")
    assert s.data_dir == tmp_path and s.ingest_url == "http://127.0.0.1:9090"
    assert s.shortcodes == {"1414": ["housing_queue"]}
    assert s.bridge_allow_ips == [ipaddress.ip_network("10.0.0.0/8"),
                                  ipaddress.ip_network("192.0.2.7/32")]


def test_defaults(monkeypatch, tmp_path):
    for key in ("GOVSMS_REDIS_URL", "GOVSMS_DATABASE_URL", "GOVSMS_TRANSPORT"):
        monkeypatch.delenv(key, raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.redis_url is None and s.database_url is None
    assert s.transport_url == f"file://{tmp_path.resolve() / 'outbox.jsonl'}"
    assert s.shortcodes["1414"] == ["tech_inspection", "kindergarten_queue", "housing_queue"]
    assert s.sla_seconds == 60 and s.visibility_timeout < s.sla_seconds


def test_secrets_are_generated_once_into_the_data_dir(tmp_path):
    s = Settings(data_dir=tmp_path / "data")
    with pytest.raises(RuntimeError, match="no bridge_secret"):
        s.secret()
    s.ensure_secrets()
    first, key = s.secret(), s.key()
    assert len(first) >= 32 and len(key) >= 32 and first != key
    s.ensure_secrets()
    assert (s.secret(), s.key()) == (first, key)
    for name in ("bridge_secret", "secret_key"):
        assert (tmp_path / "data" / name).stat().st_mode & 0o077 == 0


def test_configured_secrets_win(tmp_path):
    key = secrets.token_urlsafe(32)
    s = Settings(data_dir=tmp_path, bridge_secret=GOOD, secret_key=key)
    s.ensure_secrets()
    assert (s.secret(), s.key()) == (GOOD, key)
    assert not (tmp_path / "bridge_secret").exists() and not (tmp_path / "secret_key").exists()


def test_api_clients_and_tariffs_from_json(monkeypatch):
    monkeypatch.setenv("GOVSMS_API_CLIENTS",
                       '{"portal": {"secret": "s3cr3t-p0rtal-0123456789abcdef0123", '
                       '"senders": ["1414", "EGOV"]}}')
    s = Settings()
    assert s.api_clients["portal"].senders == ["1414", "EGOV"]
    assert s.api_clients["portal"].secret.get_secret_value() == "s3cr3t-p0rtal-0123456789abcdef0123"
    assert "s3cr3t-p0rtal" not in repr(s)
    assert s.tariffs["8188"].amount == 1500 and s.tariffs["8188"].currency == "VND"


def test_other_commands_find_the_servers_run_started(monkeypatch, tmp_path):
    monkeypatch.delenv("GOVSMS_REDIS_URL", raising=False)
    monkeypatch.setenv("GOVSMS_DATABASE_URL", "postgresql://configured/db")
    (tmp_path / RUNTIME_FILE).write_text(json.dumps(
        {"redis_url": "redis://127.0.0.1:5555/0", "database_url": "postgresql://embedded/db"}))
    s = load_settings(data_dir=tmp_path)
    assert s.redis_url == "redis://127.0.0.1:5555/0"
    assert s.database_url == "postgresql://configured/db"


WEAK = [
    ("", "is empty"), ("   ", "is empty"),
    ("CHANGE-ME", "is a placeholder"), ("change_me", "is a placeholder"),
    ("ChangeMe", "is a placeholder"), ("CHANGEME", "is a placeholder"),
    ("CHANGE-ME-CHANGE-ME-CHANGE-ME-CHANGE-ME", "is a placeholder"),
    ("secret", "is a placeholder"), ("password", "is a placeholder"),
    ("<the bridge secret, 32 random bytes or more>", "is a placeholder"),
    ("...", "is a placeholder"), ("${GOVSMS_BRIDGE_SECRET}", "is a placeholder"),
    ("x" * 64, "is one short pattern repeated"), ("ab" * 20, "is one short pattern repeated"),
    ("s3cr3t-p0rtal", "is shorter than 32 bytes"),
    ("c1d2e3f4g5h6i7j8k9l0m1n2o3p4q5r", "is shorter than 32 bytes"),  # 31
]


@pytest.mark.parametrize(("value", "rule"), WEAK)
def test_weak_secrets_are_named_by_their_rule(value, rule):
    assert secret_problem(value) == rule


def test_generated_secrets_pass():
    assert all(secret_problem(secrets.token_urlsafe(32)) is None for _ in range(200))


@pytest.mark.parametrize("variable", ["GOVSMS_BRIDGE_SECRET", "GOVSMS_SECRET_KEY",
                                      "GOVSMS_FLOWER_PASSWORD"])
@pytest.mark.parametrize(("value", "rule"), [("", "is empty"), ("CHANGE-ME", "is a placeholder"),
                                             ("0123456789abcdef", "is shorter than 32 bytes")])
def test_settings_refuse_a_weak_secret_and_name_the_variable_not_the_value(
        monkeypatch, tmp_path, variable, value, rule):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InsecureSecret) as refused:
        load_settings(data_dir=tmp_path)
    message = str(refused.value)
    assert message.startswith(f"govsms: refusing to start: {variable} {rule};")
    assert "\n" not in message
    if value:
        assert value not in message
    assert refused.value.code == message  # a SystemExit: the process prints it, exits 1


@pytest.mark.parametrize("secret", ["", "CHANGE-ME", "short-client-secret"])
def test_an_api_client_with_a_weak_secret_is_refused(monkeypatch, secret):
    monkeypatch.setenv("GOVSMS_API_CLIENTS", json.dumps({
        "portal": {"secret": GOOD, "senders": ["1414"]},
        "partner": {"secret": secret, "senders": ["3344"]}}))
    with pytest.raises(InsecureSecret, match=r"GOVSMS_API_CLIENTS\['partner'\]\.secret"):
        Settings()


@pytest.mark.parametrize("name", GENERATED_SECRETS)
@pytest.mark.parametrize("content", ["", "\n", "tooshort\n"])
def test_an_empty_or_short_generated_secret_file_is_refused(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(InsecureSecret, match=f"GOVSMS_{name.upper()} \\(unset, so "):
        Settings(data_dir=tmp_path)


def test_a_generated_secret_file_emptied_after_the_start_is_refused_when_read(tmp_path):
    s = Settings(data_dir=tmp_path)
    s.ensure_secrets()
    assert secret_problem(s.secret()) is None
    (tmp_path / "bridge_secret").write_text("")
    with pytest.raises(InsecureSecret, match="GOVSMS_BRIDGE_SECRET .* is empty"):
        s.secret()


def _shipped_examples() -> list[tuple[str, str]]:
    """Every secret value the deploy examples and the README show, with where it is."""
    found: list[tuple[str, str]] = []
    line = re.compile(r"^\s*#?\s*(GOVSMS_(?:BRIDGE_SECRET|SECRET_KEY|FLOWER_PASSWORD|API_CLIENTS))"
                      r"\s*[=:]\s*(.*?)\s*$")
    files = [*ROOT.glob("deploy/**/*.example"), *ROOT.glob("deploy/k8s/*.yaml"), ROOT / "README.md"]
    for path in files:
        for text in path.read_text().splitlines():
            match = line.match(text)
            if match:
                name, value = match[1], match[2].strip("'\"")
                if name == "GOVSMS_API_CLIENTS":
                    found += [(f"{path.name} {name}", c["secret"])
                              for c in json.loads(value).values()]
                else:
                    found.append((f"{path.name} {name}", value))
        found += [(f"{path.name} api client", m) for m in
                  re.findall(r'"secret": "([^"]*)"', path.read_text())]
    return found


def test_every_operators_example_shipped_stops_the_process():
    line = re.compile(r"^\s*#?\s*GOVSMS_OPERATORS\s*[=:]\s*(.*?)\s*$")
    found = [(f"{path.name}[{name}]", hashed)
             for path in [*ROOT.glob("deploy/**/*.example"), *ROOT.glob("deploy/k8s/*.yaml")]
             for text in path.read_text().splitlines() if (match := line.match(text))
             for name, hashed in json.loads(match[1].strip("'\"")).items()]
    assert len(found) >= 3, found  # compose, systemd, Kubernetes
    for where, value in found:
        with pytest.raises(NotAHash):
            check_password_hash(where, value)
    check_password_hash("a real one", PasswordHasher().hash("correct horse battery staple"))


def test_every_example_secret_shipped_is_refused():
    examples = _shipped_examples()
    assert len(examples) >= 8, examples  # the compose, systemd and k8s files, and the README
    accepted = [(where, value) for where, value in examples if secret_problem(value) is None]
    assert accepted == []


def _started(argv: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


PROCESSES = {
    "ingest": ["-m", "workers.cli", "ingest"],
    "flower": ["-m", "workers.cli", "flower"],
    "console": ["-m", "workers.cli", "console"],
    "cli": ["-m", "workers.cli", "status"],
    "worker": ["-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "inbound"],
    "beat": ["-m", "celery", "-A", "workers.celery_app", "beat"],
}


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_process_stops_at_start_on_an_empty_secret(process, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GOVSMS_")},
           "PYTHONPATH": str(ROOT), "GOVSMS_DATA_DIR": str(tmp_path),
           "GOVSMS_REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: it stops before
           "GOVSMS_DATABASE_URL": "postgresql://127.0.0.1:1/none",
           "GOVSMS_BRIDGE_SECRET": "", "GOVSMS_SECRET_KEY": secrets.token_urlsafe(32),
           "GOVSMS_FLOWER_PASSWORD": secrets.token_urlsafe(32)}
    done = _started([sys.executable, *PROCESSES[process]], env, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(
        "govsms: refusing to start: GOVSMS_BRIDGE_SECRET is empty;"), lines
