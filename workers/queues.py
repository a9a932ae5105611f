"""Every queue's name, shared by the app's routes, the tasks that publish and the processes.

Queues: `inbound` (parse and dispatch), `svc.<service>` (one per service, so a slow
registry delays only its own service), `outbound` (the sender), `outbound.bulk`
(clients' messages) and `replay` (batch replay of message logs).
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


def service_queue(service: str) -> str:
    """The queue of one service's tasks."""
    return f"svc.{service}"


def services(settings: Settings) -> list[str]:
    """The names of the services some short code offers, sorted."""
    return sorted({name for names in settings.shortcodes.values() for name in names})


def all_queues(settings: Settings) -> list[str]:
    """Every queue name, for a worker that serves them all."""
    return [INBOUND, *(service_queue(s) for s in services(settings)), OUTBOUND, BULK, REPLAY]
