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
