"""The names of the queues, shared by the app's routes and the tasks that publish."""

from __future__ import annotations

INBOUND = "inbound"
OUTBOUND = "outbound"
# Clients' messages: the same sender, another queue and worker, never ahead of replies.
BULK = "outbound.bulk"


def service_queue(service: str) -> str:
    """The queue of one service's tasks."""
    return f"svc.{service}"
