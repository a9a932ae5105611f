"""CPU accounting of the bench: process trees from /proc, PostgreSQL backends by their client.

A process group's CPU is its root's and its descendants' (reaped children included);
Redis reports its own when it is not one of ours; each PostgreSQL backend is
attributed to the process holding the other end of its socket.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

CLK_TCK = os.sysconf("SC_CLK_TCK")
OTHER = "other processes"  # CPU outside the processes measured, interrupts and steal
KERNEL = "kernel interrupts (irq, softirq)"
STEAL = "stolen by the hypervisor"


def _proc_table() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (parent pid, CPU seconds of itself and of its reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()
        ticks = sum(int(v) for v in rest[11:15])  # utime stime cutime cstime
        table[int(entry)] = (int(rest[1]), ticks / CLK_TCK)
    return table


def _own_cpu(pid: int) -> float:
    """CPU seconds of one process alone (threads included, children not)."""
    rest = Path(f"/proc/{pid}/stat").read_text()
    rest = rest[rest.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def _tree(table: dict[int, tuple[int, float]], root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def machine_busy() -> tuple[float, float, float, float]:
    """(busy, total, interrupts, steal) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return ((total - idle) / CLK_TCK, total / CLK_TCK, (fields[5] + fields[6]) / CLK_TCK,
            fields[7] / CLK_TCK)


def _socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
        except OSError:
            continue
    return inodes


def _port_inodes() -> dict[int, int]:
    """Local TCP port -> socket inode, for every TCP socket of the machine."""
    found: dict[int, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            found[int(parts[1].rsplit(":", 1)[1], 16)] = int(parts[9])
    return found


@dataclass
class CpuSnapshot:
    """CPU seconds by process group, PostgreSQL backends by the process they serve."""

    at: float
    groups: dict[str, float]
    backends: dict[str, float]
    machine: tuple[float, float, float, float]


def snapshot(roots: dict[str, int], connect: Callable[[], psycopg.Connection],
             redis_client: Callable[[], redis.Redis] | None, *, own_postgres: bool,
             loadgen: int | None = None) -> CpuSnapshot:
    """CPU so far of each process group, and of each PostgreSQL backend by its client.

    `redis_client` is given when Redis is not one of `roots` (it then reports its own CPU);
    `own_postgres` when PostgreSQL is (else its CPU is the sum of our backends').
    """
    table = _proc_table()
    groups = {name: sum(table[p][1] for p in _tree(table, pid))
              for name, pid in roots.items() if pid in table}
    groups["bench"] = _own_cpu(os.getpid())
    if loadgen and loadgen in table:
        groups["loadgen"] = table[loadgen][1]
    if redis_client is not None:
        try:
            cpu = redis_client().info("cpu")
            groups["redis"] = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        except redis.RedisError:
            pass
    backends: dict[str, float] = defaultdict(float)
    try:
        with connect() as conn:
            rows = conn.execute(
                "SELECT pid, client_port FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()").fetchall()
    except psycopg.Error:
        rows = []
    owners: dict[int, str] = dict.fromkeys(_socket_inodes([os.getpid()]), "bench")
    for name, pid in roots.items():
        if name != "postgres":
            for inode in _socket_inodes(_tree(table, pid)):
                owners[inode] = name
    ports = _port_inodes()
    for backend, port in rows:
        if backend in table:
            client = owners.get(ports.get(port or -1, -1), "other")
            backends[client] += _own_cpu(backend)
    if not own_postgres:
        groups["postgres"] = sum(backends.values())
    return CpuSnapshot(time.time(), groups, dict(backends), machine_busy())


def trees(roots: dict[str, int]) -> CpuSnapshot:
    """CPU so far of each process tree in `roots` and of the bench itself, asking no server:
    for processes that are not the gateway's, such as Kannel's boxes and fakesmsc."""
    table = _proc_table()
    groups = {name: sum(table[p][1] for p in _tree(table, pid))
              for name, pid in roots.items() if pid in table}
    groups["bench"] = _own_cpu(os.getpid())
    return CpuSnapshot(time.time(), groups, {}, machine_busy())


def cpu_between(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, Any]:
    """Cores each process group used between two snapshots (1.0 = one core flat out)."""
    wall = b.at - a.at
    groups = {k: round((b.groups[k] - a.groups.get(k, 0.0)) / wall, 3)
              for k in b.groups if k in a.groups}
    backends = {k: round((v - a.backends.get(k, 0.0)) / wall, 3) for k, v in b.backends.items()}
    busy, total, interrupts, steal = ((y - x) / wall for x, y in zip(a.machine, b.machine))
    groups[KERNEL] = round(interrupts, 3)  # loopback TCP is mostly softirq
    if steal >= 0.005:
        groups[STEAL] = round(steal, 3)
    groups[OTHER] = round(
        max(busy - sum(groups.values()), 0.0), 3)
    return {"seconds": round(wall, 1), "cores": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
            "postgres_backends_by_client": dict(sorted(backends.items(), key=lambda kv: -kv[1])),
            "machine_busy_cores": round(busy, 3), "machine_cores": round(total, 2)}

