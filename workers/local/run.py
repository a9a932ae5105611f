"""`govsms run`: the whole gateway on one machine, with embedded servers when none is configured."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from replies.masking import redact_secrets
from services.stores import mbg
from workers import db, extracts
from workers.console import operators
from workers.local import demo as demo_data
from workers.local import embedded, gateway
from workers.local.gateway import start_server
from workers.local.supervisor import Supervisor
from workers.settings import GENERATED_SECRETS, RUNTIME_FILE, Settings

log = logging.getLogger(__name__)


LOCK_FILE = "govsms.lock"


class RunError(RuntimeError):
    """`govsms run` cannot start; the message says why in one line."""


def _lock(settings: Settings) -> int:
    """Hold DATA_DIR/govsms.lock for this instance's life (the pid inside), or refuse: a second
    instance would start a second Redis on the same AOF and remove the first's runtime.json."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunError(f"govsms is already running in {settings.data_dir}, pid {pid}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def check_ports(settings: Settings) -> None:
    """Fail at once, naming the setting that moves it, when a port we will listen on is taken:
    else the banner says running while the ingest restarts in a loop behind it."""
    wanted = [("ingest HTTP", settings.http_host, settings.http_port, "GOVSMS_HTTP_PORT"),
              ("Flower", settings.flower_host, settings.flower_port, "GOVSMS_FLOWER_PORT"),
              ("console", settings.console_host, settings.console_port, "GOVSMS_CONSOLE_PORT")]
    for n, (what, _, port, setting) in enumerate(wanted):
        for other, _, other_port, other_setting in wanted[n + 1:]:
            if port == other_port:
                raise RunError(f"the {what} and the {other} both want port {port}: "
                               f"set {setting} or {other_setting}")
    for what, host, port, setting in wanted:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            socket.create_server((host, port), family=family).close()
        except OSError as error:
            raise RunError(f"port {port} ({what}, {host}) is not free: {error.strerror}; "
                           f"stop what uses it or set {setting}") from None


def _govsms() -> str:
    """How to call `govsms` here: its name if PATH finds this very script, else its path."""
    script = sys.argv[0]
    if Path(script).name == "govsms":
        found = shutil.which("govsms")
        if found and os.path.exists(script) and os.path.samefile(found, script):
            return "govsms"
        return script
    return f"{os.path.relpath(sys.executable)} -m workers.cli"


def run(settings: Settings, *, demo: bool = False) -> int:
    """Start servers as needed, migrate, start the gateway's processes and supervise them."""
    lock = _lock(settings)
    try:
        check_ports(settings)
        return _run(settings, demo)
    finally:
        os.close(lock)


def _run(settings: Settings, demo: bool) -> int:
    """`run` once this instance holds the data dir and its ports are free."""
    data_dir = settings.data_dir.resolve()
    # Where the cluster goes is settled (or refused) before anything is generated.
    if not settings.database_url:
        embedded.postgres_folder(data_dir)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings.ensure_secrets()
    for name in (*GENERATED_SECRETS, *embedded.PASSWORD_FILES):
        if (data_dir / name).exists():  # an older version's may be wider
            (data_dir / name).chmod(0o600)
    sup = Supervisor()
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runtime = data_dir / RUNTIME_FILE
    try:
        redis_url = settings.redis_url
        if redis_url is None:
            spec = embedded.redis_spec(data_dir)
            start_server(sup, spec, logs)
            redis_url = spec.url
        pg = None if settings.database_url else embedded.postgres_spec(data_dir)
        database_url = settings.database_url
        if pg is not None:
            start_server(sup, pg, logs)
            database_url = pg.url
        # The URLs carry the servers' passwords: for this user's eyes only.
        embedded.write_private(runtime, json.dumps({
            "redis_url": redis_url, "database_url": database_url, "pid": os.getpid()}))
        applied = db.migrate(settings.database_migrate_url or database_url)
        log.info("migrations applied: %s", ", ".join(applied) or "none pending")
        if demo:
            _seed_demo_once(database_url, settings.database_transaction_pooler)
        started = settings.model_copy(update={"redis_url": redis_url,
                                              "database_url": database_url, "data_dir": data_dir})
        try:
            gateway.start(started, logs, gateway.supervised(sup, logs, gateway.child_env(started)))
        except gateway.NotReady as error:  # so the banner never promises too early
            raise RunError(str(error)) from None
        _print_banner(settings, redis_url, database_url, logs,
                      has_operators=bool(operators.accounts(started)))
        if pg is not None and pg.location is not None:
            print(f"PostgreSQL's cluster is in {pg.location} ({data_dir}/pg links there): "
                  f"its user cannot enter {data_dir}", flush=True)
        while not stop:
            sup.check()
            time.sleep(0.5)
        log.info("stopping")
        return 0
    finally:
        sup.stop()
        runtime.unlink(missing_ok=True)


def _seed_demo_once(database_url: str, transaction_pooler: bool) -> None:
    """Load the demo dataset on first start (when MBG is empty)."""
    with db.connect(database_url, transaction_pooler=transaction_pooler) as conn:
        if not mbg.is_empty(conn):
            return
        text = json.dumps(demo_data.dataset(), default=str)
        counts = extracts.load(conn, extracts.validate(text))
    log.info("demo dataset loaded: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))


def _mask_url(url: str) -> str:
    """`url` as the banner shows it: its password, tokens (a dlr-url's too) as `***`."""
    return redact_secrets(url)


def _print_banner(settings: Settings, redis_url: str, database_url: str, logs: Path, *,
                  has_operators: bool = True) -> None:
    console = "sign in as an operator" if has_operators else (
        f"no operator yet: {_govsms()} operator add NAME")
    print(f"""govsms is running. Ctrl-C stops it.
  ingest HTTP   {settings.ingest_url}/sms/inbound  (Kannel get-url), /v1/messages/inbound (JSON)
  redis         {_mask_url(redis_url)}
  postgresql    {_mask_url(database_url)}
  flower        http://{settings.flower_host}:{settings.flower_port}/  (user {settings.flower_user},
                password in {settings.data_dir}/flower_password unless configured)
  console       {settings.console_url}/  ({console})
  metrics       {settings.ingest_url}/metrics   health {settings.ingest_url}/readyz
  transport     {_mask_url(settings.transport_url)}
  logs          {logs}/
Try:  {_govsms()} send --from +77011234567 --to 1414 --wait 10 "hello"
""", flush=True)
