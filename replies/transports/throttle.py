"""Token buckets that keep an operator link under its rate limit: in Redis (shared), or local.

A bucket holds up to `burst` tokens and refills at `rate` per second. `acquire`
reserves tokens and sleeps until they are due, so every caller gets its own
slot and callers together never exceed the rate: with the Redis bucket, all
worker processes on all hosts share one bucket per link, and one Lua script
does the whole reservation atomically on Redis's clock (no host clock skew).
A reservation that would wait longer than the caller's `timeout` is not made:
the caller gets `RateLimited` (retryable) and the tokens stay for others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from replies.transports.base import RateLimited

KEY_PREFIX = "govsms:throttle:"

# A Redis URL -> its client. The caller's: the gateway's builds clients through Sentinel
# too (workers/redis_urls.py); alone, a plain URL.
Connect = Callable[[str], redis.Redis]


def connect_plain(url: str) -> redis.Redis:
    """A client of the one Redis at `url`."""
    return redis.Redis.from_url(url, socket_timeout=5)

# KEYS[1] the bucket (hash: tokens, at in µs). ARGV: rate/s, burst, n, max wait (s),
# and for a pause, the seconds every caller must hold off. Returns {granted, wait s}.
_SCRIPT = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local n, max_wait, pause = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
local granted, wait = 1, 0
if pause > 0 then
  tokens = math.min(tokens, -rate * pause)
elseif tokens < n then
  wait = (n - tokens) / rate
  if wait > max_wait then granted = 0 end
end
if granted == 1 and pause == 0 then tokens = tokens - n end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens), 'at', string.format('%.0f', at))
-- Forget the bucket once it would be full again anyway.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {granted, string.format('%.9f', wait)}
"""


class Bucket(Protocol):
    """A rate limit that callers draw tokens from."""

    def acquire(self, n: int = 1, timeout: float | None = None) -> float: ...

    def pause(self, seconds: float) -> None: ...


def _check(rate: float, burst: int) -> None:
    if rate <= 0 or burst < 1:
        raise ValueError(f"a bucket needs rate > 0 and burst >= 1, not {rate=} {burst=}")


class RedisBucket:
    """One bucket per link name in Redis, shared by every process that names the same link."""

    def __init__(self, client: redis.Redis, name: str, rate: float, burst: int = 1, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        _check(rate, burst)
        self.key = KEY_PREFIX + name
        self.rate = rate
        self.burst = burst
        self._script = client.register_script(_SCRIPT)
        self._sleep = sleep

    @classmethod
    def from_url(cls, url: str, name: str, rate: float, burst: int = 1, *,
                 connect: Connect = connect_plain) -> RedisBucket:
        """A bucket on the Redis at `url`."""
        return cls(connect(url), name, rate, burst)

    def _call(self, n: int, max_wait: float, pause: float) -> tuple[bool, float]:
        try:
            granted, wait = self._script(keys=[self.key],
                                         args=[self.rate, self.burst, n, max_wait, pause])
        except redis.RedisError as error:
            raise RateLimited(f"rate limit store unavailable: {type(error).__name__}",
                              retry_after=1.0) from error
        return bool(granted), float(wait)

    def acquire(self, n: int = 1, timeout: float | None = None) -> float:
        """Wait until `n` tokens are ours and return the seconds waited; RateLimited past `timeout`."""
        max_wait = 1e9 if timeout is None else timeout
        granted, wait = self._call(n, max_wait, 0.0)
        if not granted:
            raise RateLimited(f"{self.key} busy for {wait:.2f} s", retry_after=wait)
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every caller of this link off for `seconds` (the operator said slow down)."""
        self._call(0, 0.0, seconds)


class LocalBucket:
    """The same bucket for one process, when no Redis is configured."""

    def __init__(self, rate: float, burst: int = 1, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()
        self._sleep = sleep
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def acquire(self, n: int = 1, timeout: float | None = None) -> float:
        """Wait until `n` tokens are ours and return the seconds waited; RateLimited past `timeout`."""
        with self._lock:
            self._refill()
            wait = max(0.0, (n - self._tokens) / self.rate)
            if timeout is not None and wait > timeout:
                raise RateLimited(f"local bucket busy for {wait:.2f} s", retry_after=wait)
            self._tokens -= n
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every caller off for `seconds`."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, -self.rate * seconds)


def bucket(name: str, rate: float, burst: int = 1, redis_url: str | None = None, *,
           connect: Connect = connect_plain) -> Bucket:
    """The shared Redis bucket of link `name` when `redis_url` is given, else a local one."""
    if redis_url:
        return RedisBucket.from_url(redis_url, name, rate, burst, connect=connect)
    return LocalBucket(rate, burst)
