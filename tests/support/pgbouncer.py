"""Debian's PgBouncer in front of the test PostgreSQL, in transaction mode, as a managed
database puts it in front of a busy one: a process a test may kill and start again."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from workers.local.embedded import free_port

PGBOUNCER = "/usr/sbin/pgbouncer"


def missing() -> str | None:
    """Why the PgBouncer tests cannot run here, or None."""
    if not os.access(PGBOUNCER, os.X_OK):
        return ("PgBouncer is not installed (Debian's pgbouncer): run deploy/ensure-peers, "
                "as `make test` does")
    return None


@dataclass
class PgBouncer:
    """One pgbouncer process on a port of its own, every database of the server behind it."""

    port: int
    folder: Path
    user: str | None
    process: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        argv = [PGBOUNCER, *(["-u", self.user] if self.user else []),
                str(self.folder / "pgbouncer.ini")]
        with (self.folder / "out.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(self.conninfo("postgres"), connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {self.folder}/out.log")
                time.sleep(0.1)

    def conninfo(self, dbname: str) -> str:
        return f"user=postgres dbname={dbname} host=127.0.0.1 port={self.port}"

    def kill(self) -> None:
        """kill -9: every client connection drops, whatever it was doing."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def pgbouncer(server_port: int, *, pool_size: int = 20) -> PgBouncer:
    """A transaction-mode PgBouncer in front of the PostgreSQL on `server_port` (not started)."""
    folder = Path(tempfile.mkdtemp(prefix="govsms-pgbouncer-"))
    port = free_port()
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = host=127.0.0.1 port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    # PgBouncer will not run as root: as the server's own user then, owning its folder.
    user = None
    if os.geteuid() == 0:
        user = "postgres" if _exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        for path in (folder, *folder.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return PgBouncer(port, folder, user)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def remove(bouncer: PgBouncer) -> None:
    bouncer.kill()
    shutil.rmtree(bouncer.folder, ignore_errors=True)
