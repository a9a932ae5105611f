"""Where a message spends its time: Celery's task events joined to the rows PostgreSQL stored."""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.phases import Message, PhaseRun, stats

_STAGES = ("http_accept", "ingest_to_enqueue", "inbound_queue_wait", "dispatch_run",
           "service_queue_wait", "answer_run", "outbound_queue_wait", "deliver_run",
           "received_to_sent")


def stage_profile(run: PhaseRun, messages: list[Message]) -> dict[str, Any]:
    """Where a message spends its time, from Celery's task events and the stored timestamps.

    Per message received in the steady window: the client's HTTP round trip; from
    `inbound.received_at` to the dispatch task's publish (commit and publish in the
    ingest); for each task, published -> started (waiting in Redis or in a worker's
    prefetch) and started -> succeeded (running).

    A task's publish is its `task-sent` event where the gateway sends those
    (`GOVSMS_TASK_EVENTS`); else, for an answer or deliver task, its parent's
    `task-succeeded` (a task publishes the next step as it ends), and for a dispatch task
    its `task-received` (the worker took it: the wait in Redis then counts as the ingest's).
    """
    tasks: dict[str, dict[str, Any]] = defaultdict(dict)
    for event in run.events:
        kind, task_id = event.get("type", ""), event.get("uuid")
        if not task_id or not kind.startswith("task-"):
            continue
        task = tasks[task_id]
        task["id"] = task_id
        task[kind[5:]] = event.get("timestamp")
        for key in ("name", "args", "root_id", "parent_id", "runtime"):
            if event.get(key) is not None:
                task.setdefault(key, event[key])
    for task in tasks.values():
        if not task.get("sent"):
            task["sent"] = (tasks.get(task.get("parent_id"), {}).get("succeeded")
                            or task.get("received"))
    # Tasks carry batches: a message's dispatch and answer tasks are those whose ids hold
    # it, its deliver task the first one its answer (or, unrouted, its dispatch) published.
    task_of: dict[str, dict[int, dict[str, Any]]] = {"dispatch": {}, "answer": {}}
    deliver_of: dict[str, dict[str, Any]] = {}
    for task in tasks.values():
        name = task.get("name", "").removeprefix("govsms.")
        if name in task_of:
            try:  # Celery shortens long argument lists in its events: those are left out
                ids = ast.literal_eval(task.get("args", ""))[-1]
            except (ValueError, SyntaxError, IndexError, TypeError):
                continue
            for inbound_id in ids:
                task_of[name].setdefault(inbound_id, task)
        elif name == "deliver" and task.get("parent_id"):
            deliver_of.setdefault(task["parent_id"], task)
    samples: dict[str, list[float]] = defaultdict(list)
    http = {r[4]: r[2] - r[1] for r in run.loadgen["records"] if r[3] == 202}
    traced = 0
    for message in messages:
        if not run.window_start <= message.received < run.window_end:
            continue
        dispatch, answer = task_of["dispatch"].get(message.id), task_of["answer"].get(message.id)
        deliver = deliver_of.get((answer or dispatch)["id"]) if dispatch else None
        if not dispatch or not deliver or not all(
                t.get(k) for t in (dispatch, deliver) for k in ("sent", "started", "succeeded")):
            continue
        traced += 1
        if message.id in http:
            samples["http_accept"].append(http[message.id])
        samples["ingest_to_enqueue"].append(dispatch["sent"] - message.received)
        samples["inbound_queue_wait"].append(dispatch["started"] - dispatch["sent"])
        samples["dispatch_run"].append(dispatch["succeeded"] - dispatch["started"])
        if answer and all(answer.get(k) for k in ("sent", "started", "succeeded")):
            samples["service_queue_wait"].append(answer["started"] - answer["sent"])
            samples["answer_run"].append(answer["succeeded"] - answer["started"])
        samples["outbound_queue_wait"].append(deliver["started"] - deliver["sent"])
        samples["deliver_run"].append(deliver["succeeded"] - deliver["started"])
        if message.sent is not None:
            samples["received_to_sent"].append(message.sent - message.received)
    stored = [m for m in messages if run.window_start <= m.received < run.window_end
              and m.sent is not None and m.created is not None and m.claimed is not None]
    return {
        "messages_traced": traced,
        "stages_s": {stage: stats(samples[stage]) for stage in _STAGES},
        "stored_timestamps_s": {
            "received_to_reply_created": stats([m.created - m.received for m in stored]),
            "reply_created_to_claimed": stats([m.claimed - m.created for m in stored]),
            "claimed_to_sent": stats([m.sent - m.claimed for m in stored]),
        },
    }


def tasks_started(logs: Path, start: float, end: float) -> Counter:
    """Tasks the workers took in [start, end), by name without `govsms.`: from Celery's own
    "Task NAME[id] received" line of each (INFO), so nothing is added to the run."""
    counts: Counter = Counter()
    for log in logs.glob("worker-*.log"):
        with log.open(errors="replace") as lines:
            for line in lines:
                if '"celery.worker.strategy"' not in line or not line.startswith("{"):
                    continue
                entry = json.loads(line)
                at = dt.datetime.fromisoformat(entry["ts"]).timestamp()
                if start <= at < end and entry["msg"].startswith("Task govsms."):
                    counts[entry["msg"][12:].split("[", 1)[0]] += 1
    return counts
