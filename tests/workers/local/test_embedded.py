"""The embedded servers of `govsms run`: passwords on both, an application role that is no
superuser, 0600 files, and a data dir of an older version (trust, no password) upgraded."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from workers import db
from workers.local import embedded


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp: PostgreSQL runs unprivileged and must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="govsms-embedded-"))
    folder.chmod(0o755)
    yield folder / ".govsms"
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running(spec: embedded.ServerSpec, argv: list[str] | None = None) -> Iterator[None]:
    """`spec` started (with `argv` instead of its own, for an older version's server)."""
    process = subprocess.Popen(argv or spec.argv, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, cwd="/", user=spec.user,
                               group=spec.group, extra_groups=None if spec.user is None else [])
    try:
        embedded.wait_ready(spec, lambda: process.poll() is None)
        yield
    finally:
        process.send_signal(2 if spec.name == "postgres" else 15)
        process.wait(30)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _refused(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return "password" in str(error)
    return False


def test_postgres_wants_a_password_and_its_app_role_is_no_superuser(data_dir):
    spec = embedded.postgres_spec(data_dir)
    port = urlsplit(spec.url).port
    app_secret = (data_dir / embedded.PG_APP_PASSWORD).read_text().strip()
    admin_secret = (data_dir / embedded.PG_ADMIN_PASSWORD).read_text().strip()
    assert app_secret not in " ".join(spec.argv) and admin_secret not in " ".join(spec.argv)
    with running(spec):
        for user in ("postgres", "govsms", "nobody"):
            assert _refused(f"postgresql://{user}@127.0.0.1:{port}/postgres")
        assert _refused(f"postgresql://govsms:wrong-password@127.0.0.1:{port}/govsms")
        assert db.migrate(spec.url)  # the app role creates its schemas
        with psycopg.connect(spec.url, autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                "WHERE rolname = current_user").fetchone() == (False, False, False)
            conn.execute("CREATE TEMP TABLE out (line text)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("COPY out FROM PROGRAM 'id'")
            owners = {row[0] for row in conn.execute(
                "SELECT tableowner FROM pg_tables WHERE schemaname IN ('public', 'mbg')")}
        assert owners == {"govsms"}
        with psycopg.connect(spec.admin_url, autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                                ).fetchone() == (True,)
    hba = (data_dir / "pg" / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and {rule[-1] for rule in rules} == {"scram-sha-256"}
    for name in (embedded.PG_APP_PASSWORD, embedded.PG_ADMIN_PASSWORD):
        assert _mode(data_dir / name) == 0o600


def _older_cluster(data_dir: Path) -> None:
    """A cluster as the version before made it: trust for every local user, the migrations
    applied as the superuser, a row of data."""
    bindir = embedded.postgres_bindir()
    uid, gid = embedded._unprivileged()
    folder = data_dir / "pg"
    folder.mkdir(parents=True, mode=0o700)
    if uid is not None:
        os.chown(folder, uid, gid)
    subprocess.run([str(bindir / "initdb"), "-D", str(folder), "-U", "postgres", "--auth=trust",
                    "--encoding=UTF8", "--no-instructions"], check=True, user=uid, group=gid,
                   capture_output=True, cwd="/")
    port = embedded.free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/govsms"
    argv = [str(bindir / "postgres"), "-D", str(folder), "-p", str(port), "-c",
            "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c",
            "logging_collector=off"]
    with running(embedded.ServerSpec("postgres", argv, url, lambda: _created(url), user=uid,
                                     group=gid)):
        db.migrate(url)
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO mbg.subscribers (phone, iin) "
                         "VALUES ('+77010000001', '880102300459')")


def _created(url: str) -> bool:
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=1) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'govsms'").fetchone():
                conn.execute('CREATE DATABASE "govsms"')
        return True
    except psycopg.Error:
        return False


def test_an_older_trust_cluster_is_upgraded_in_place_with_its_data(data_dir):
    _older_cluster(data_dir)
    spec = embedded.postgres_spec(data_dir)
    port = urlsplit(spec.url).port
    with running(spec):
        assert _refused(f"postgresql://postgres@127.0.0.1:{port}/govsms")
        assert db.migrate(spec.url) == []
        with psycopg.connect(spec.url) as conn:
            assert conn.execute("SELECT phone FROM mbg.subscribers").fetchall() == [
                ("+77010000001",)]
            conn.execute("INSERT INTO mbg.subscribers (phone, iin) "
                         "VALUES ('+77010000002', '900101300123')")
            conn.execute("CREATE SCHEMA later")  # what a later migration may do
            assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                "ON n.oid = c.relnamespace WHERE n.nspname NOT IN "
                                "('pg_catalog', 'information_schema', 'pg_toast') "
                                "AND pg_get_userbyid(c.relowner) <> 'govsms'").fetchone() == (0,)
    for name in (embedded.PG_APP_PASSWORD, embedded.PG_ADMIN_PASSWORD):
        assert _mode(data_dir / name) == 0o600


def test_redis_refuses_commands_without_its_password_and_keeps_older_data(data_dir):
    older = embedded.redis_spec(data_dir)
    port = urlsplit(older.url).port
    plain = f"redis://127.0.0.1:{port}/0"
    # The version before: no password, the same AOF folder.
    with running(embedded.ServerSpec("redis", older.argv[:1] + older.argv[2:], plain,
                                     lambda: _pings(plain))):
        redis.Redis.from_url(plain).set("kept", "1")
    spec = embedded.redis_spec(data_dir)
    secret = (data_dir / embedded.REDIS_PASSWORD).read_text().strip()
    assert secret not in " ".join(spec.argv)
    with running(spec):
        port = urlsplit(spec.url).port
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port).get("kept")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password="wrong-password").ping()
        assert redis.Redis.from_url(spec.url).get("kept") == b"1"
    assert _mode(data_dir / embedded.REDIS_PASSWORD) == 0o600
    assert _mode(data_dir / "redis" / "govsms.conf") == 0o600


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_a_data_dir_postgres_cannot_enter_gets_its_cluster_outside(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("PostgreSQL runs as another user only when govsms runs as root")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    folder = embedded.postgres_folder(home / "clone" / ".govsms")
    assert folder.parent.parent == embedded.CLUSTERS and folder.name == "pg"
    assert not (home / "clone").exists()  # nothing made yet: it only says where
