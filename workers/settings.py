"""The one settings object. Read here, in `workers/`, and passed inward as plain arguments."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from pathlib import Path
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RUNTIME_FILE = "runtime.json"
# Secrets generated into the data dir when not configured, one file each.
GENERATED_SECRETS = ("bridge_secret", "secret_key", "flower_password")

DEFAULT_SHORTCODES: dict[str, list[str]] = {
    "1414": ["tech_inspection", "kindergarten_queue", "housing_queue"],
    "8188": ["account_registration"],
}
DEFAULT_REGIONS: dict[str, str] = {"1414": "KZ", "8188": "VN"}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A secret shorter than this is refused: token_urlsafe(32), what we generate, is 43.
MIN_SECRET_BYTES = 32
HOW_TO_GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Words that mean "fill me in", compared with letters and digits only, case ignored:
# what deploy/*.example, deploy/k8s and the README ship, and the usual suspects.
_PLACEHOLDER_WORDS = frozenset({
    "changeme", "changeit", "changethis", "replaceme", "fillme", "fillmein", "setme", "todo",
    "fixme", "secret", "password", "passwd", "pass", "token", "key", "example", "default",
    "test", "admin", "none", "null", "xxx", "yoursecret", "yourpassword", "mysecret",
})
# ...and fragments that mark one even inside a longer value (CHANGE-ME-CHANGE-ME-...).
_PLACEHOLDER_PARTS = ("changeme", "changeit", "changethis", "replaceme", "fillmein", "setme")
_NOT_ALNUM = re.compile(r"[\W_]+")


class InsecureSecret(SystemExit):
    """A secret that must not start a process: empty, a placeholder, or short.

    A SystemExit, so that an uncaught one stops any process (ingest, a Celery
    worker importing the app, beat, flower, the CLI) with its one-line message
    and status 1, and no `except Exception` on the way swallows it. The message
    names the variable and the rule, never the value.
    """

    def __init__(self, variable: str, rule: str) -> None:
        super().__init__(f"govsms: refusing to start: {variable} {rule}; set a random secret "
                         f"of at least {MIN_SECRET_BYTES} bytes ({HOW_TO_GENERATE})")
        self.variable = variable
        self.rule = rule


class RefusedSetting(SystemExit):
    """A setting no process may start with: stops it (as InsecureSecret does) with one line
    naming the variable and the rule, never the value (a URL may carry a password)."""

    def __init__(self, variable: str, rule: str) -> None:
        super().__init__(f"govsms: refusing to start: {variable} {rule}")


class NotAHash(RefusedSetting):
    """An operator's password configured where its argon2id hash belongs."""

    def __init__(self, variable: str) -> None:
        super().__init__(variable, "is not an argon2id hash; `govsms operator add NAME "
                                   "--print` makes one")


_B64 = re.compile(r"[A-Za-z0-9+/]{16,}")  # a salt (16 bytes or more) or a hash, unpadded


def check_password_hash(variable: str, value: str) -> None:
    """Raise NotAHash unless `value` has the form of an argon2id hash
    (`$argon2id$v=19$m=...,t=...,p=...$SALT$HASH`): a password, or an example's
    `$argon2id$...$CHANGE-ME`, where one belongs stops the process."""
    fields = value.split("$")
    if (len(fields) != 6 or fields[0] or fields[1] != "argon2id" or not fields[2].startswith("v=")
            or not fields[3].startswith("m=") or not all(_B64.fullmatch(f) for f in fields[4:])):
        raise NotAHash(variable)


def secret_problem(value: str) -> str | None:
    """Why `value` may not serve as a secret (empty, placeholder, short), or None if it may."""
    stripped = value.strip()
    if not stripped:
        return "is empty"
    words = _NOT_ALNUM.sub("", stripped).lower()
    if (not words or words in _PLACEHOLDER_WORDS or any(p in words for p in _PLACEHOLDER_PARTS)
            or (stripped[0], stripped[-1]) in (("<", ">"), ("{", "}"), ("[", "]"))
            or stripped.startswith("${")):
        return "is a placeholder"
    if _repeats_a_short_pattern(stripped):
        return "is one short pattern repeated"
    if len(stripped.encode("utf-8")) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def _repeats_a_short_pattern(value: str) -> bool:
    # "aaaa...", "abab...", "1234 1234 ..." carry a few bits however long they are.
    return any(len(value) > size and value == (value[:size] * (len(value) // size + 1))[:len(value)]
               for size in range(1, 5))


class ApiClient(BaseModel):
    """A client of the outbound API (the portal, a telecom partner)."""

    secret: SecretStr
    senders: list[str] = Field(description="Sender ids the client may send from")
    manages_accounts: bool = Field(False, description="May record 8188 password changes")
    links_numbers: bool = Field(False, description="May link a phone to an IIN in MBG "
                                "(link_number codes): only a client that has itself "
                                "authenticated the IIN's holder, as the portal has")
    messages_per_day: int | None = Field(None, ge=0, description="Outbound messages a day "
                                         "(UTC); unset: GOVSMS_API_MESSAGES_PER_DAY")
    parts_per_day: int | None = Field(None, ge=0, description="Outbound SMS parts a day (UTC); "
                                      "unset: GOVSMS_API_PARTS_PER_DAY")
    extra_countries: list[str] = Field(default_factory=list, description="Countries (ISO 3166 "
                                       "alpha-2) the client may send to besides those of "
                                       "GOVSMS_REGIONS; mobile numbers only all the same")
    callback_url: AnyHttpUrl | None = Field(
        None, description="Where the gateway POSTs an event on each final state of the "
                          "client's SMS, signed with its secret (README, \"Callbacks\")")


class Tariff(BaseModel):
    """What the operator charges the citizen for one MO to a short code."""

    amount: int
    currency: str
    utc_offset_hours: int = Field(0, description="Where the reporting day starts")


class Settings(BaseSettings):
    """Everything configurable, from environment variables prefixed `GOVSMS_`."""

    model_config = SettingsConfigDict(env_prefix="GOVSMS_", extra="ignore")

    redis_url: str | None = Field(None, description="Broker and counters: redis://, rediss:// "
                                  "(TLS) or sentinel://[:PW@]HOST[:PORT],HOST[:PORT].../MASTER"
                                  "[/DB] (workers/redis_urls.py); unset: `govsms run` starts "
                                  "its own")
    database_url: str | None = Field(None, description="Message store and registries; unset: "
                                                       "`govsms run` starts its own")
    database_migrate_url: str | None = Field(
        None, description="The migrations' own URL: the schema owner's, straight to "
        "PostgreSQL (they hold a session's advisory lock, which a transaction-mode pooler "
        "cannot keep); unset: GOVSMS_DATABASE_URL")
    database_transaction_pooler: bool = Field(
        False, description="GOVSMS_DATABASE_URL goes through a pooler in transaction mode "
        "(PgBouncer's pool_mode = transaction): no prepared statements, and the statement "
        "timeout comes from the role (ALTER ROLE ... SET statement_timeout), not the "
        "connection")
    transport: str | None = Field(None, description="`file://PATH` or `kannel+http://USER:PASS@"
                                                    "HOST:PORT/cgi-bin/sendsms`; unset: "
                                                    "`file://DATA_DIR/outbox.jsonl`")
    data_dir: Path = Field(Path(".govsms"), description="Embedded servers, generated secret, outbox")
    http_host: str = Field("127.0.0.1", description="Ingest HTTP listen address")
    http_port: int = Field(8080, description="Ingest HTTP port")
    bridge_secret: SecretStr | None = Field(None, description="Shared secret of the SMSC bridge; "
                                                              "unset: generated into DATA_DIR")
    bridge_allow_ips: Annotated[list[Network], NoDecode] = Field(
        default_factory=list, description="Networks the bridge may call from (comma-separated "
                                          "or JSON list); empty: any")
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default_factory=list, description="Reverse proxies whose X-Forwarded-For the ingest "
                                          "believes (comma-separated or JSON list); empty: none, "
                                          "the peer's own address is the caller's")
    http_header_timeout_s: float = Field(5.0, description="Seconds a caller has to send its "
                                         "request headers before the ingest drops the connection")
    shortcodes: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_SHORTCODES),
        description="Which services answer on which short code (JSON)")
    regions: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_REGIONS),
        description="Country of the senders per short code, for phone numbers (JSON)")
    sla_seconds: float = Field(60.0, description="Reply deadline after receipt")
    visibility_timeout: int = Field(20, description="Seconds before Redis redelivers an "
                                                    "unacknowledged task")
    ingest_linger_ms: float = Field(10.0, description="How long the ingest lets messages "
                                    "gather before it records and enqueues them together")
    ingest_linger_max_ms: float = Field(50.0, description="How long it lets them gather at "
                                        "most while the dispatch queue has a backlog: batches, "
                                        "and every task after them, then grow with the load")
    ingest_max_wait_s: float = Field(30.0, description="The expected wait for a reply past "
                                     "which the ingest refuses new messages (503): those "
                                     "waiting, divided by the SMS sent per second lately")
    ingest_max_backlog: int = Field(30000, description="Messages waiting for their reply (to "
                                    "be answered or sent) past which the ingest refuses new "
                                    "ones whatever the rate; 0: never refuse")
    flood_limit: int = Field(10, ge=0, description="MOs one phone gets answered per flood "
                             "window; past them one reply says so, then none until the "
                             "window passes; 0: no limit")
    flood_window_s: int = Field(600, ge=1, description="The flood limit's window, in seconds")
    repeat_window_s: int = Field(60, ge=0, description="The same text from the same phone "
                                 "within this many seconds is answered once; 0: every time")
    retention_days: int = Field(90, ge=0, description="Days a message keeps its text and "
                                "phone number (then masked and digested, counts kept); beat "
                                "purges every night at 21:00 UTC; 0: kept for ever")
    task_events: bool = Field(False, description="Workers send Celery task events from the "
                              "start (Flower turns them on anyway while it watches)")
    concurrency: int = Field(2, description="Processes of the inbound worker; the service, "
                             "outbound and bulk workers run twice as many threads")
    statement_timeout_ms: int = Field(5000, description="PostgreSQL statement timeout")
    smpp_receiver: str | None = Field(None, description="`smpp://ID:PW@HOST:PORT?mode=receiver` "
                                                         "(or transceiver): take MOs and receipts "
                                                         "from an SMSC; unset: no SMPP ingest")
    templates: Path | None = Field(None, description="Reply templates (TOML) replacing the "
                                                     "built-in ones")
    log_level: str = Field("INFO", description="Log level")
    log_format: str = Field("json", description="`json` (one object per line) or `text`")
    secret_key: SecretStr | None = Field(None, description="Key for sealing SMS texts that carry "
                                                           "a password or code, and for hashing "
                                                           "codes; unset: generated into DATA_DIR")
    api_clients: dict[str, ApiClient] = Field(
        default_factory=dict, description='API clients (JSON): {"portal": {"secret": "...", '
                                          '"senders": ["1414", "EGOV"]}}')
    tariffs: dict[str, Tariff] = Field(
        default_factory=lambda: {"8188": Tariff(amount=1500, currency="VND", utc_offset_hours=7)},
        description="Charge per MO by short code (JSON)")
    reconcile_every_s: float = Field(10.0, description="How often beat runs the reconciler")
    reconcile_after_s: float = Field(40.0, description="Age at which the reconciler takes an "
                                                       "unanswered message or unsent SMS")
    rotate_every_s: float = Field(600.0, description="How often beat looks for 8188 passwords "
                                                     "to rotate")
    flower_user: str = Field("operator", description="Flower's user name")
    flower_password: SecretStr | None = Field(None, description="Flower's password; unset: "
                                                                "generated into DATA_DIR")
    flower_host: str = Field("127.0.0.1", description="Flower's listen address")
    flower_port: int = Field(5555, description="Flower's port")
    console_host: str = Field("127.0.0.1", description="The operators' console's listen address")
    console_port: int = Field(8090, description="The operators' console's port")
    console_session_s: int = Field(8 * 3600, ge=60, description="Seconds an operator's "
                                   "console session lasts after sign-in")
    console_secure_cookie: bool = Field(False, description="Mark the console's cookies Secure: "
                                        "set it when the console is served over HTTPS (a TLS "
                                        "proxy in front), never on plain HTTP")
    operators: dict[str, SecretStr] = Field(
        default_factory=dict, description='Operators of the console (JSON): {"aigerim": '
        '"$argon2id$v=19$..."}, argon2id hashes (`govsms operator add NAME --print` makes '
        'one), never passwords; added to those in DATA_DIR/operators.json, which `govsms '
        'operator add NAME` writes')
    flower_control: bool = Field(False, description="Flower may send tasks and control workers "
                                                    "(rate limits, consumers, shutdown); off: "
                                                    "monitoring only")
    otp_sender: str = Field("1414", description="Sender id of one-time codes")
    otp_per_phone: int = Field(3, description="Codes a phone may be sent per 10 minutes")
    otp_per_client: int = Field(60, description="Codes a client may request per minute")
    otp_per_user: int = Field(3, description="Codes sent per 10 minutes for one end user the "
                                             "client names (the portal's session or account)")
    otp_failures_per_phone: int = Field(10, description="Failed code checks a phone may have "
                                        "in 24 hours; past them every check fails until they "
                                        "age out (NIST SP 800-63B throttling)")
    api_messages_per_day: int = Field(5000, ge=0, description="Outbound messages an API client "
                                      "may send a day (UTC), unless its own entry says")
    api_parts_per_day: int = Field(15000, ge=0, description="Outbound SMS parts an API client "
                                   "may send a day (UTC), unless its own entry says")
    api_max_parts: int = Field(6, ge=1, description="SMS parts one outbound message may take")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        from workers.redis_urls import BadRedisUrl, check

        try:
            if value:
                check(value)
        except BadRedisUrl as error:  # raised, not returned: pydantic's would echo the URL
            raise RefusedSetting("GOVSMS_REDIS_URL", f"is not a Redis URL: {error}") from None
        return value

    @field_validator("bridge_allow_ips", "trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        # Raised, not returned as a validation error: pydantic's would echo the input.
        for name in GENERATED_SECRETS:
            configured: SecretStr | None = getattr(self, name)
            if configured is not None:
                _check(f"GOVSMS_{name.upper()}", configured.get_secret_value())
            else:
                stored = _read_generated(self.data_dir / name)
                if stored is not None:
                    _check(f"GOVSMS_{name.upper()} (unset, so {self.data_dir / name})", stored)
        for client, config in self.api_clients.items():
            _check(f"GOVSMS_API_CLIENTS[{client!r}].secret", config.secret.get_secret_value())
        for name, hashed in self.operators.items():
            check_password_hash(f"GOVSMS_OPERATORS[{name!r}]", hashed.get_secret_value())
        return self

    @property
    def outbox(self) -> Path:
        """The file transport's default path."""
        return self.data_dir / "outbox.jsonl"

    @property
    def transport_url(self) -> str:
        """The configured transport, or the file transport under the data dir."""
        return self.transport or f"file://{self.outbox.resolve()}"

    @property
    def ingest_url(self) -> str:
        """Where the ingest HTTP server is reached from this host."""
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host
        return f"http://{host}:{self.http_port}"

    def _generated(self, name: str) -> str:
        configured: SecretStr | None = getattr(self, name)
        if configured is not None:
            return configured.get_secret_value()
        path = self.data_dir / name
        if not path.exists():
            raise RuntimeError(f"no {name}: set GOVSMS_{name.upper()} or run `govsms run` once "
                               f"to generate {path}")
        value = path.read_text().strip()
        # Checked again here: the file may have been emptied since the settings loaded.
        _check(f"GOVSMS_{name.upper()} (unset, so {path})", value)
        return value

    @property
    def console_url(self) -> str:
        """Where the operators' console is reached from this host."""
        host = "127.0.0.1" if self.console_host in ("0.0.0.0", "::") else self.console_host
        return f"http://{host}:{self.console_port}"

    def quota(self, client: str) -> tuple[int, int]:
        """The messages and SMS parts `client` may send a day: its own, else the defaults."""
        entry = self.api_clients[client]
        return (self.api_messages_per_day if entry.messages_per_day is None
                else entry.messages_per_day,
                self.api_parts_per_day if entry.parts_per_day is None else entry.parts_per_day)

    def secret(self) -> str:
        """The bridge secret: configured, or read from the data dir."""
        return self._generated("bridge_secret")

    def key(self) -> str:
        """The server's secret key: configured, or read from the data dir."""
        return self._generated("secret_key")

    def flower_auth(self) -> str:
        """Flower's `user:password`."""
        return f"{self.flower_user}:{self._generated('flower_password')}"

    def ensure_secrets(self) -> None:
        """Generate into the data dir each secret that is not configured and not there yet."""
        for name in GENERATED_SECRETS:
            path = self.data_dir / name
            if getattr(self, name) is None and not path.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
                path.write_text(secrets.token_urlsafe(32) + "\n")


def _check(variable: str, value: str) -> None:
    problem = secret_problem(value)
    if problem is not None:
        raise InsecureSecret(variable, problem)


def _read_generated(path: Path) -> str | None:
    """A generated secret's file, or None when there is none (yet) or it cannot be read."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return None  # read again, and refused then, by the process that needs it


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; URLs of embedded servers a running `govsms run` started."""
    settings = Settings(**overrides)
    runtime = settings.data_dir / RUNTIME_FILE
    if (settings.redis_url is None or settings.database_url is None) and runtime.exists():
        started = json.loads(runtime.read_text())
        settings = settings.model_copy(update={
            "redis_url": settings.redis_url or started.get("redis_url"),
            "database_url": settings.database_url or started.get("database_url"),
        })
    return settings
