"""The submits the SMSC did not answer in time: kept for every process on the link."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from replies.transports.throttle import Connect, connect_plain

# A part of an SMS: (outbound id, part number).
PartKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Doubt:
    """What is known of a part whose submit_sm went unanswered."""

    unanswered: int       # its submits with no answer yet (a late refusal takes one off)
    since: float          # when the latest of them went out (epoch seconds)
    message_id: str = ""  # the SMSC's id, once a late answer said it took the part


class Unanswered:
    """The parts whose submit_sm got no answer in time, for every process on the link.

    Their answer may still come, on the bind that sent them, while the part is being
    retried by another process: so they are kept in Redis when the link has one
    (else in this process), a day at most.
    """

    TTL_S = 86_400
    LOCAL_MAX = 10_000

    def __init__(self, name: str, redis_url: str | None = None, *,
                 connect: Connect = connect_plain) -> None:
        self._prefix = f"govsms:smpp:{name}:unanswered:"
        self._redis = connect(redis_url) if redis_url else None
        self._local: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _name(self, key: PartKey) -> str:
        return f"{self._prefix}{key[0]}:{key[1]}"

    def _update(self, key: PartKey, *, add: int = 0, message_id: str = "") -> None:
        name = self._name(key)
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hincrby(name, "unanswered", add)
            if add > 0:
                pipe.hset(name, "since", repr(time.time()))
            if message_id:   # the first answer that came is the one recorded
                pipe.hsetnx(name, "message_id", message_id)
            pipe.expire(name, self.TTL_S)
            pipe.execute()
            return
        with self._lock:
            fields = self._local.setdefault(name, {})
            fields["unanswered"] = str(int(fields.get("unanswered", "0")) + add)
            if add > 0:
                fields["since"] = repr(time.time())
            if message_id:
                fields.setdefault("message_id", message_id)
            while len(self._local) > self.LOCAL_MAX:
                self._local.popitem(last=False)

    def went_unanswered(self, keys: list[PartKey]) -> None:
        """These parts were submitted and no answer came in time."""
        for key in keys:
            self._update(key, add=1)

    def answered_late(self, key: PartKey, message_id: str | None) -> None:
        """A late answer: the SMSC took the part (its id), or refused it (None)."""
        if message_id:
            self._update(key, message_id=message_id)
        else:
            self._update(key, add=-1)

    def get(self, keys: list[PartKey]) -> dict[PartKey, Doubt]:
        """The doubts about these parts, for those that have one."""
        names = [self._name(key) for key in keys]
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            found = [{k.decode(): v.decode() for k, v in row.items()} for row in pipe.execute()]
        else:
            with self._lock:
                found = [dict(self._local.get(name, {})) for name in names]
        return {key: Doubt(int(f.get("unanswered", "0")), float(f.get("since", "0")),
                           f.get("message_id", ""))
                for key, f in zip(keys, found, strict=True) if f}

    def forget(self, keys: list[PartKey]) -> None:
        """The parts were recorded as sent: nothing is in doubt any more."""
        names = [self._name(key) for key in keys]
        if not names:
            return
        if self._redis is not None:
            self._redis.delete(*names)
            return
        with self._lock:
            for name in names:
                self._local.pop(name, None)


__all__ = ["Doubt", "PartKey", "Unanswered"]
