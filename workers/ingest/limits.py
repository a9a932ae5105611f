"""Rate limits in Redis, shared by every ingest process: fixed windows, one round trip."""

from __future__ import annotations

import hashlib

import redis


class RateLimiter:
    """Counts hits per key and window; says how long to wait once a limit is reached."""

    def __init__(self, client: redis.Redis, prefix: str = "govsms:rate") -> None:
        self._redis = client
        self._prefix = prefix

    def hit(self, name: str, subject: str, limit: int, window_s: int) -> int | None:
        """Count a hit; None while within `limit`, else the seconds until the window ends."""
        # The subject may be a phone number: only a digest of it goes into Redis.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:24]
        key = f"{self._prefix}:{name}:{digest}"
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window_s, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
        return None if count <= limit else max(int(ttl), 1)

    def take(self, hits: list[tuple[str, str, int, int]]) -> int | None:
        """Count one hit on every (name, subject, limit, window_s) if none is at its limit.

        None when counted; else the seconds until the latest full window ends, and nothing
        is counted: a request one limit refuses spends no other limit's budget.
        """
        keys = [self._key(name, subject) for name, subject, _, _ in hits]
        args = [value for _, _, limit, window in hits for value in (limit, window)]
        wait = int(self._redis.eval(_TAKE, len(keys), *keys, *args))
        return wait or None

    def _key(self, name: str, subject: str) -> str:
        return f"{self._prefix}:{name}:{hashlib.sha256(subject.encode()).hexdigest()[:24]}"


# Check every counter first, then count on all of them: atomic, in one round trip.
_TAKE = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
    wait = math.max(wait, redis.call('TTL', key), 1)
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[2 * i], 'NX')
end
return 0
"""
