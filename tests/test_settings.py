"""Settings: the GOVSMS_ environment, defaults, and what `govsms run` leaves for other commands."""

from __future__ import annotations

import ipaddress
import json

import pytest

from workers.settings import RUNTIME_FILE, Settings, load_settings


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
    s = Settings(data_dir=tmp_path, bridge_secret="given", secret_key="k" * 32)
    s.ensure_secrets()
    assert (s.secret(), s.key()) == ("given", "k" * 32)
    assert not (tmp_path / "bridge_secret").exists() and not (tmp_path / "secret_key").exists()


def test_api_clients_and_tariffs_from_json(monkeypatch):
    monkeypatch.setenv("GOVSMS_API_CLIENTS",
                       '{"portal": {"secret": "s3cr3t-p0rtal", "senders": ["1414", "EGOV"]}}')
    s = Settings()
    assert s.api_clients["portal"].senders == ["1414", "EGOV"]
    assert s.api_clients["portal"].secret.get_secret_value() == "s3cr3t-p0rtal"
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
