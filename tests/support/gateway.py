"""Helpers for end-to-end tests: the gateway's real processes, started as `govsms run` would."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from replies.sealing import Sealer
from tests.support.keys import KEY
from workers.local.embedded import free_port
from workers.local.gateway import child_env, start
from workers.queues import all_queues
from workers.settings import ApiClient, Settings

PORTAL_SECRET = "e2e-portal-secret-0123456789abcdef0123"


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Gateway:
    """Ingest, inbound/service worker and outbound worker as separate processes."""

    settings: Settings
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    env_extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.settings, carry_secrets=True, extra=self.env_extra)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def start(self, only: Collection[str] | None = None) -> Gateway:
        """Start the processes `govsms run` starts (or those named `only`), but beat,
        flower and the console; wait until ready."""

        def spawn(name: str, argv: list[str]) -> Callable[[], bool]:
            process = self.spawn(name, argv)
            return lambda: process.poll() is None

        start(self.settings, self.logs, spawn, only=only, skip=("beat", "flower", "console"),
              worker_ready_s=60)
        return self

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

    def post(self, **fields: Any) -> httpx.Response:
        """Post an inbound SMS to the JSON endpoint as the bridge."""
        return httpx.post(f"{self.settings.ingest_url}/v1/messages/inbound", json=fields,
                          headers={"X-Bridge-Token": self.settings.secret()}, timeout=10)

    def sent(self) -> list[dict[str, Any]]:
        """Every SMS the file transport recorded, sealed texts opened with the server's key."""
        sealer = Sealer(self.settings.key())
        return [{**sms, "text": sealer.unseal(sms["text"])} if sms.get("sealed") else sms
                for sms in self.outbox()]

    def outbox(self) -> list[dict[str, Any]]:
        """Every SMS as the file transport wrote it (sealed texts sealed)."""
        path = self.settings.outbox
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def queue_depths(self) -> dict[str, int]:
        """Every queue holding tasks, and `unacked` for those workers hold; empty when drained."""
        client = redis.Redis.from_url(self.settings.redis_url or "")
        try:
            depths = {q: client.llen(q) for q in all_queues(self.settings)}
            depths["unacked"] = client.hlen("unacked")
        finally:
            client.close()
        return {q: n for q, n in depths.items() if n}

    def replies_to(self, inbound_id: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """The SMS recorded for `inbound_id`, once there is at least one."""
        return wait_for(lambda: [s for s in self.sent() if s["inbound_id"] == inbound_id],
                        timeout_s, f"a reply to inbound {inbound_id}")


@contextmanager
def running_gateway(settings: Settings, folder: Path, **env: str) -> Iterator[Gateway]:
    """The gateway's processes for `settings`, stopped afterwards."""
    gw = Gateway(settings, folder, env_extra=env)
    try:
        yield gw.start()
    finally:
        gw.stop()


def gateway_settings(database_url: str, redis_url: str, data_dir: Path, secret: str) -> Settings:
    """Settings for a gateway under test: its own port and outbox, and no flood or repeat
    limit: a test's few phones stand in for many citizens, and a module's gateway keeps its
    counters from test to test. The limits' own tests set them (test_suppression*.py)."""
    portal = ApiClient(secret=PORTAL_SECRET, senders=["1414", "EGOV"], manages_accounts=True,
                       links_numbers=True)
    return Settings(database_url=database_url, redis_url=redis_url, data_dir=data_dir,
                    bridge_secret=secret, secret_key=KEY, http_port=free_port(),
                    api_clients={"portal": portal}, flood_limit=0, repeat_window_s=0,
                    transport=f"file://{data_dir / 'outbox.jsonl'}")
