"""Flower for the operator: monitoring only, unless control is explicitly allowed.

Flower 2.x lets whoever has its password send and apply tasks, change rate limits
and time limits, revoke and abort tasks, add and cancel consumers, grow, shrink,
restart and shut down worker pools: the API under /api/task/* and /api/worker/*,
which the dashboard's buttons call too. Without GOVSMS_FLOWER_CONTROL=true those
routes answer 403; the monitoring views and the read-only API stay.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import tornado.web
from flower import urls
from flower.api import control, tasks

from workers import logs
from workers.settings import Settings

# Every handler of Flower 2.x that changes something in the cluster.
CONTROL_HANDLERS = (
    control.WorkerShutDown, control.WorkerPoolRestart, control.WorkerPoolGrow,
    control.WorkerPoolShrink, control.WorkerPoolAutoscale, control.WorkerQueueAddConsumer,
    control.WorkerQueueCancelConsumer, control.TaskTimout, control.TaskRateLimit,
    control.TaskRevoke, tasks.TaskApply, tasks.TaskAsyncApply, tasks.TaskSend, tasks.TaskAbort,
)


class ControlRefused(tornado.web.RequestHandler):
    """What a control route answers while control is off: 403, whoever asks."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(403, reason="Control disabled (GOVSMS_FLOWER_CONTROL)")

    def check_xsrf_cookie(self) -> None:
        """Nothing to check: the request is refused anyway."""


def monitoring_only(handlers: list[Any]) -> list[Any]:
    """Flower's routes with each control handler replaced by `ControlRefused`."""
    kept: list[Any] = []
    for handler in handlers:
        if isinstance(handler, tuple) and handler[1] in CONTROL_HANDLERS:
            kept.append((handler[0], ControlRefused))
        elif isinstance(handler, tornado.web.URLSpec) and handler.handler_class in CONTROL_HANDLERS:
            kept.append(tornado.web.url(handler.regex.pattern, ControlRefused, name=handler.name))
        else:
            kept.append(handler)
    return kept


def serve(settings: Settings) -> None:
    """Run Flower in this process behind the password, control routes refused unless allowed."""
    if not settings.flower_control:
        # In place: flower.app took a reference to this very list at import.
        urls.handlers[:] = monitoring_only(urls.handlers)
    # In the environment, not on the command line, where `ps` would show the password.
    os.environ["FLOWER_BASIC_AUTH"] = settings.flower_auth()
    logs.configure(settings.log_level, settings.log_format)
    from celery.bin.celery import main as celery

    # --logging=none: tornado's own handler would print unmasked, unredacted lines.
    sys.argv = ["celery", "-A", "workers.celery_app", "flower", f"--address={settings.flower_host}",
                f"--port={settings.flower_port}", "--logging=none"]
    celery()
