"""Driving a run: its open items enqueued in batches, at a rate, until every one is settled."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

import psycopg

from workers.replay.runs import Progress, open_items, progress

log = logging.getLogger(__name__)

BATCH_SIZE = 50


def batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    """`ids` in batches of `size`."""
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


def drive(conn: psycopg.Connection, run_id: int, send: Callable[[list[int]], None], *,
          batch_size: int = BATCH_SIZE, rate: float | None = None, window: int = 8,
          on_progress: Callable[[Progress], None] = lambda _: None, poll_s: float = 0.2,
          stall_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Progress:
    """Enqueue the run's open items and wait until every one is done or failed.

    At most `window` batches wait on the queue at a time, and with `rate`, items are
    enqueued no faster than `rate` a second. Items that stay open `stall_s` seconds
    with nothing moving are enqueued again (a lost task); items are idempotent.
    """
    if rate is not None:  # about one batch a second, so the pace stays even
        batch_size = max(1, min(batch_size, int(rate)))
    todo = open_items(conn, run_id)
    pending = list(batches(todo, batch_size))
    enqueued: list[int] = []
    start = clock()
    last = progress(conn, run_id)
    base = last.done + last.failed
    moved_at = start
    on_progress(last)
    while True:
        state = progress(conn, run_id)
        settled = state.done + state.failed
        if settled != last.done + last.failed:
            moved_at = clock()
        last = state
        on_progress(state)
        if state.finished:
            return state
        in_flight = len(enqueued) - (settled - base)
        while pending and in_flight < window * batch_size:
            if rate is not None and len(enqueued) + len(pending[0]) > rate * (clock() - start) \
                    + batch_size:
                break
            batch = pending.pop(0)
            send(batch)
            enqueued += batch
            in_flight += len(batch)
        if enqueued and clock() - moved_at > stall_s:
            still = set(open_items(conn, run_id))
            again = [i for i in enqueued if i in still]
            log.warning("replay run %s: nothing moved for %.0f s; enqueuing %d items again",
                        run_id, stall_s, len(again))
            for batch in batches(again, batch_size):
                send(batch)
            moved_at = clock()
        sleep(poll_s)
