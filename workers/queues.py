"""Every queue's name, shared by the app's routes, the tasks that publish and the processes.

Queues: `inbound` (parse and dispatch), `svc.<service>` (one per service, so a slow
registry delays only its own service), `outbound` (the sender), `outbound.bulk`
(clients' messages), `replay` (batch replay of message logs, and the nightly purge) and
`callbacks` (clients' signed callbacks; served by the replay worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.settings import Settings

INBOUND = "inbound"
OUTBOUND = "outbound"
# Clients' messages: the same sender, another queue and worker, never ahead of replies.
BULK = "outbound.bulk"
# Replayed message logs, on a worker of their own (docs/replay.md).
REPLAY = "replay"
# Clients' callbacks: a slow client holds up only these (workers/callbacks.py).
CALLBACKS = "callbacks"
# The background worker's queues: batch replays, the purge, callbacks.
BACKGROUND = f"{REPLAY},{CALLBACKS}"


def service_queue(service: str) -> str:
    """The queue of one service's tasks."""
    return f"svc.{service}"


def services(settings: Settings) -> list[str]:
    """The names of the services some short code offers, sorted."""
    return sorted({name for names in settings.shortcodes.values() for name in names})


def all_queues(settings: Settings) -> list[str]:
    """Every queue name, for a worker that serves them all."""
    return [INBOUND, *(service_queue(s) for s in services(settings)), OUTBOUND, BULK, REPLAY,
            CALLBACKS]
