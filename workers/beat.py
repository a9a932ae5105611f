"""Beat's scheduler: RedBeat's (the schedule and a lock in Redis, so two beats never send
the same periodic task), riding out a Redis failover instead of exiting.

RedBeat extends its lock at every tick with no retry: when the master dies, the extend
raises and beat exits, and until something restarts it nothing runs the reconciler.
Here a tick that meets an unreachable Redis (or a master not found yet through the
sentinels) waits RETRY_S and ticks again; a lock whose key went with the old master
(replication is asynchronous) or with an emptied Redis is taken again, or waited for, as
at start, should another beat have taken it meanwhile, and the schedule written again.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redis.exceptions import LockNotOwnedError

log = logging.getLogger(__name__)

RETRY_S = 1.0


class Scheduler(RedBeatScheduler):
    """RedBeatScheduler that carries on through a Redis outage or failover."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return super().tick(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("beat: Redis unavailable (%s); ticking again in %.0f s",
                        type(error).__name__, RETRY_S)
            return RETRY_S
        except LockNotOwnedError:
            # Redis lost the lock's key, and with it the schedule's (a failover to a replica
            # that had not caught up, an emptied Redis): take the lock again (waiting while
            # another beat holds it, as at start), then write the schedule again.
            log.warning("beat: its lock is gone (Redis lost its data); taking it again")
            self.lock.acquire()
            self.setup_schedule()
            return 0.0
