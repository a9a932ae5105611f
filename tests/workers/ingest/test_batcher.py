"""The ingest's group commit (`Batcher`): batches that grow while the workers are behind."""

from __future__ import annotations

import asyncio
import time

from workers.ingest.accept import Accepted, Batcher, InboundSms


class Recorder:
    """Stands in for `Ingest`: keeps the size of each batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def accept_many(self, batch: list[InboundSms]) -> list[Accepted]:
        self.batches.append(len(batch))
        return [Accepted(n, duplicate=False) for n in range(len(batch))]


def _sms(n: int) -> InboundSms:
    return InboundSms(**{"from": "87011234567", "to": "1414", "text": f"TO {n}", "id": f"m-{n}"})


def _arrivals(batcher: Batcher, count: int, spacing_s: float) -> float:
    async def run() -> None:
        waiting = []
        for n in range(count):
            waiting.append(asyncio.create_task(batcher.accept([_sms(n)])))
            await asyncio.sleep(spacing_s)
        await asyncio.gather(*waiting)

    started = time.monotonic()
    asyncio.run(run())
    return time.monotonic() - started


def test_while_the_workers_are_behind_a_batch_gathers_what_keeps_coming():
    ingest = Recorder()
    # More requests in flight than wait on the batch: more are coming.
    batcher = Batcher(ingest.accept_many, linger_s=0.01, linger_max_s=5.0, depth=lambda: 3)
    _arrivals(batcher, 20, spacing_s=0.02)  # twice the short linger between two
    assert ingest.batches == [20]


def test_with_no_backlog_a_batch_is_what_came_within_the_short_linger():
    ingest = Recorder()
    batcher = Batcher(ingest.accept_many, linger_s=0.01, linger_max_s=5.0, depth=lambda: 0)
    _arrivals(batcher, 10, spacing_s=0.03)
    assert ingest.batches == [1] * 10


def test_a_batch_gathers_no_longer_than_the_most_it_may():
    ingest = Recorder()
    batcher = Batcher(ingest.accept_many, linger_s=0.01, linger_max_s=0.1, depth=lambda: 3)
    _arrivals(batcher, 12, spacing_s=0.05)
    assert len(ingest.batches) >= 4 and max(ingest.batches) <= 3
