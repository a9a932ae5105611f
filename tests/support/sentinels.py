"""A highly available Redis on loopback, as production runs one: a master, a replica and
three sentinels (`redis-server --sentinel`, the same binary), each a process of its own
that a test may kill -9 and start again; passwords on the servers and on the sentinels."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from workers.local.embedded import free_port, redis_binary

MASTER = "govsms"
PASSWORD = "redis-group-password-0123456789abcdef"
SENTINEL_PASSWORD = "sentinel-password-0123456789abcdef"


@dataclass
class Node:
    """One redis-server process (a server or a sentinel), restartable on its port."""

    name: str
    port: int
    config: Path
    sentinel: bool = False
    process: subprocess.Popen | None = None

    def start(self) -> Node:
        argv = [redis_binary(), str(self.config), *(["--sentinel"] if self.sentinel else [])]
        with (self.config.parent / "out.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.config.parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start: {self.config.parent / 'out.log'}")

    def client(self) -> redis.Redis:
        password = SENTINEL_PASSWORD if self.sentinel else PASSWORD
        return redis.Redis(port=self.port, password=password, socket_timeout=2,
                           socket_connect_timeout=1)

    def kill(self) -> None:
        """kill -9."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def role(self) -> str:
        return self.client().info("replication")["role"]


@dataclass
class SentinelGroup:
    """The master, its replica and three sentinels watching them."""

    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return (f"sentinel://:{PASSWORD}@{hosts}/{MASTER}/{db}"
                f"?sentinel_password={SENTINEL_PASSWORD}")

    def master(self) -> Node:
        """The server the sentinels name as master now."""
        _, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER)
        return next(s for s in self.servers if s.port == int(port))

    def wait_replicated(self) -> None:
        """Until the replica has everything the master took."""
        self.master().client().execute_command("WAIT", 1, 5000)


def _write(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "redis.conf"
    config.write_text("\n".join(lines) + "\n")
    return config


@contextmanager
def sentinel_group(folder: Path) -> Iterator[SentinelGroup]:
    """Start the group (the master first, then the replica and the sentinels); stop it all."""
    group = SentinelGroup()
    common = ["bind 127.0.0.1", "save \"\"", "appendonly no", f"requirepass {PASSWORD}",
              "repl-diskless-sync-delay 0",
              f"masterauth {PASSWORD}", "daemonize no", "logfile \"\""]
    master_port = free_port()
    for n, name in enumerate(("server-a", "server-b")):
        port = master_port if n == 0 else free_port()
        replica = [f"replicaof 127.0.0.1 {master_port}"] if n else []
        group.servers.append(Node(name, port, _write(folder / name, [
            f"port {port}", *common, *replica])))
    for n in range(3):
        port = free_port()
        group.sentinels.append(Node(f"sentinel-{n}", port, _write(folder / f"sentinel-{n}", [
            f"port {port}", "bind 127.0.0.1", "daemonize no", "logfile \"\"",
            f"requirepass {SENTINEL_PASSWORD}",
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2",
            f"sentinel auth-pass {MASTER} {PASSWORD}",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 3000",
            f"sentinel parallel-syncs {MASTER} 1",
            # Each sentinel finds the others through the master; they share the password.
            f"sentinel sentinel-pass {SENTINEL_PASSWORD}"]), sentinel=True))
    try:
        for node in (*group.servers, *group.sentinels):
            node.start()
        group.wait_replicated()
        yield group
    finally:
        for node in (*group.sentinels, *group.servers):
            node.kill()
