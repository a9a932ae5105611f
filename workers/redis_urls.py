"""Every Redis client of the gateway from the one setting, `GOVSMS_REDIS_URL`.

Three forms:

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]           one server (unix:// too)
    rediss://[[USER]:PASSWORD@]HOST[:PORT][/DB]          one server over TLS (the server's
                                                         certificate checked unless the URL
                                                         says `ssl_cert_reqs=none`)
    sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]
               [?sentinel_password=...&sentinel_username=...]
                                                         Redis Sentinel: the sentinels (port
                                                         26379 unless given), the master's
                                                         name, the db; USER and PASSWORD are
                                                         the master's (and its replicas')

From it: `client()` for a process's own client (the ingest's limits, the tasks' counters,
the token bucket, the SMPP notes, metrics, status, the console), `celery_broker()` for
Celery's broker URL and transport options, `redbeat()` for beat's RedBeat. Through
Sentinel each asks the sentinels where the master is and asks again when it loses it,
so a failover needs no restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_PORT = 26379
SCHEMES = ("redis", "rediss", "unix", "sentinel")


class BadRedisUrl(ValueError):
    """A `GOVSMS_REDIS_URL` that names no Redis; the message says why, never the password."""


@dataclass(frozen=True)
class SentinelTarget:
    """A master found through sentinels."""

    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)


def sentinel_target(url: str) -> SentinelTarget | None:
    """The sentinels, master and credentials of a `sentinel://` URL; None for another form."""
    parts = urlsplit(url)
    if parts.scheme != "sentinel":
        return None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = [_host_port(h) for h in hosts.split(",") if h]
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise BadRedisUrl("a sentinel URL is sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]"
                          "...]/MASTER[/DB]")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"sentinel_password", "sentinel_username"}
    if unknown:
        raise BadRedisUrl(f"a sentinel URL takes sentinel_password and sentinel_username, "
                          f"not {', '.join(sorted(unknown))}")
    sentinel_kwargs = {"password": query.get("sentinel_password"),
                       "username": query.get("sentinel_username")}
    return SentinelTarget(sentinels=sentinels, master=unquote(path[0]),
                          db=int(path[1]) if len(path) == 2 else 0,
                          username=unquote(username) or None,
                          password=unquote(password) or None,
                          sentinel_kwargs={k: v for k, v in sentinel_kwargs.items() if v})


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not host:  # no port given
        host, port = text, ""
    if port and not port.isdigit():
        raise BadRedisUrl("a sentinel's port is a number")
    return host.strip("[]"), int(port) if port else SENTINEL_PORT


def check(url: str) -> None:
    """BadRedisUrl unless `url` is one of the three forms."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise BadRedisUrl(f"must start with {', '.join(s + '://' for s in SCHEMES)}")
    sentinel_target(url)


def _sentinel(target: SentinelTarget, **kwargs: Any) -> Sentinel:
    # The sentinels get the same socket timeouts as the master, and their own credentials.
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    return Sentinel(target.sentinels, sentinel_kwargs={**timeouts, **target.sentinel_kwargs},
                    **kwargs)


def client(url: str, **kwargs: Any) -> redis.Redis:
    """A client of the Redis `url` names (through its sentinels for `sentinel://`): every
    command goes to the current master, found again after a failover."""
    target = sentinel_target(url)
    if target is None:
        return redis.Redis.from_url(url, **kwargs)
    return _sentinel(target, **kwargs).master_for(
        target.master, redis_class=redis.Redis, db=target.db, username=target.username,
        password=target.password)


def celery_broker(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and the transport options it needs besides ours: kombu's
    `sentinel://HOST:PORT;sentinel://...` with `master_name` and the sentinels' credentials;
    a `rediss://` URL with its certificate check (kombu refuses one without)."""
    target = sentinel_target(url)
    if target is None:
        if url.startswith("rediss://") and "ssl_cert_reqs" not in url:
            url += ("&" if "?" in url else "?") + "ssl_cert_reqs=required"
        return url, {}
    auth = ""
    if target.password:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    hosts = ";".join(f"sentinel://{auth}{_netloc(h, p)}/{target.db}" for h, p in target.sentinels)
    options: dict[str, Any] = {"master_name": target.master}
    if target.sentinel_kwargs:
        options["sentinel_kwargs"] = dict(target.sentinel_kwargs)
    return hosts, options


def redbeat(url: str) -> dict[str, Any]:
    """Celery settings for RedBeat (beat's schedule and lock) on `url`: its own sentinel form."""
    target = sentinel_target(url)
    if target is None:  # its own (empty) options: RedBeat would fall back to the broker's
        return {"redbeat_redis_url": url, "redbeat_redis_options": {}}
    options: dict[str, Any] = {"sentinels": target.sentinels, "service_name": target.master,
                               "db": target.db, "password": target.password,
                               "socket_timeout": 5.0}
    if target.username:
        options["username"] = target.username
    if target.sentinel_kwargs:
        options["sentinel_kwargs"] = dict(target.sentinel_kwargs)
    host, port = target.sentinels[0]
    return {"redbeat_redis_url": f"redis-sentinel://{_netloc(host, port)}/{target.db}",
            "redbeat_redis_options": options}


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
