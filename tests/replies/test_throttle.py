"""Token buckets: the local one on a fake clock, the shared one on the real Redis from many processes."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
import redis

from replies.transports.base import RateLimited
from replies.transports.throttle import KEY_PREFIX, LocalBucket, RedisBucket, bucket


class FakeClock:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _local(rate: float, burst: int) -> tuple[LocalBucket, FakeClock]:
    clock = FakeClock()
    return LocalBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


# rate, burst, tokens asked one after another, the waits expected
CASES = [
    (10, 1, [1, 1, 1], [0.0, 0.1, 0.1]),
    (10, 3, [1, 1, 1, 1, 1], [0.0, 0.0, 0.0, 0.1, 0.1]),
    (2, 1, [1, 1], [0.0, 0.5]),
    (10, 5, [5, 5], [0.0, 0.5]),
    (100, 1, [3], [0.02]),     # more than the burst: waits for the debt, still granted
]


@pytest.mark.parametrize(("rate", "burst", "asks", "waits"), CASES)
def test_local_bucket_waits(rate, burst, asks, waits):
    b, clock = _local(rate, burst)
    assert [round(b.acquire(n), 6) for n in asks] == waits
    assert clock.slept == pytest.approx([w for w in waits if w > 0])


def test_local_bucket_refills_while_idle_up_to_the_burst():
    b, clock = _local(10, 2)
    b.acquire(2)
    clock.now += 60
    assert [b.acquire(), b.acquire(), round(b.acquire(), 6)] == [0.0, 0.0, 0.1]


def test_local_bucket_past_the_timeout_raises_retryable_and_keeps_the_tokens():
    b, _ = _local(10, 1)
    b.acquire()
    with pytest.raises(RateLimited) as caught:
        b.acquire(5, timeout=0.2)
    assert caught.value.retryable and caught.value.retry_after == pytest.approx(0.5)
    assert b.acquire(timeout=0.2) == pytest.approx(0.1)   # nothing was taken by the refusal


def test_local_bucket_pause_holds_everyone_off():
    b, _ = _local(10, 5)
    b.pause(2.0)
    assert b.acquire() == pytest.approx(2.1)
    b.pause(1.0)
    b.pause(1.0)   # pauses do not add up: both callers saw the same "slow down"
    assert b.acquire() == pytest.approx(1.1)


def test_bucket_without_redis_is_local():
    assert isinstance(bucket("link", 5), LocalBucket)
    with pytest.raises(ValueError):
        LocalBucket(0, 1)


# --- the shared bucket, on the real Redis -------------------------------------------------

RATE = 100.0
SECONDS = 2.5
PROCESSES = 4


def _hammer(url: str, name: str, start: float, out: multiprocessing.Queue) -> None:
    b = RedisBucket.from_url(url, name, RATE, 1)
    stamps: list[float] = []
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < start + SECONDS:
        b.acquire(timeout=5)
        stamps.append(time.time())
    out.put(stamps)


def test_processes_sharing_a_link_stay_within_its_rate(redis_url):
    name = f"test-{uuid.uuid4().hex[:8]}"
    out: multiprocessing.Queue = multiprocessing.Queue()
    start = time.time() + 0.5   # every process ready before the first token
    workers = [multiprocessing.Process(target=_hammer, args=(redis_url, name, start, out))
               for _ in range(PROCESSES)]
    for w in workers:
        w.start()
    stamps = sorted(s for _ in workers for s in out.get(timeout=30))
    for w in workers:
        w.join(10)
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    print(f"shared bucket: {len(stamps)} tokens in {stamps[-1] - stamps[0]:.2f} s from "
          f"{PROCESSES} processes: {measured:.1f}/s for a limit of {RATE:.0f}/s")
    assert measured == pytest.approx(RATE, rel=0.05)
    assert measured <= RATE * 1.01
    # No one-second window holds more than the rate plus the burst.
    busiest = max(sum(1 for s in stamps[i:] if s < t + 1.0) for i, t in enumerate(stamps))
    assert busiest <= RATE + 1 + 1   # +1 for the jitter of waking up


def test_a_pause_from_one_process_holds_every_process_off(redis_url):
    name = f"test-{uuid.uuid4().hex[:8]}"
    first = RedisBucket.from_url(redis_url, name, 50, 5)
    other = RedisBucket.from_url(redis_url, name, 50, 5)
    first.pause(0.4)
    began = time.monotonic()
    waited = other.acquire()
    assert waited == pytest.approx(0.42, abs=0.02)
    assert time.monotonic() - began >= 0.4


def test_a_wait_past_the_timeout_is_refused_and_costs_nothing(redis_url):
    name = f"test-{uuid.uuid4().hex[:8]}"
    b = RedisBucket.from_url(redis_url, name, 10, 1)
    b.acquire()
    with pytest.raises(RateLimited) as caught:
        b.acquire(10, timeout=0.05)
    assert caught.value.retryable and caught.value.retry_after == pytest.approx(1.0, abs=0.05)
    assert b.acquire(timeout=0.5) <= 0.1


def test_links_are_independent_and_forgotten_when_full(redis_url):
    one = RedisBucket.from_url(redis_url, f"test-{uuid.uuid4().hex[:8]}", 20, 1)
    two = RedisBucket.from_url(redis_url, f"test-{uuid.uuid4().hex[:8]}", 20, 1)
    assert one.acquire() == 0 and two.acquire() == 0
    ttl = redis.Redis.from_url(redis_url).pttl(one.key)
    assert 0 < ttl <= 1100
    assert one.key.startswith(KEY_PREFIX)


def test_redis_down_is_retryable():
    b = RedisBucket(redis.Redis(port=1, socket_connect_timeout=0.2), "down", 10)
    with pytest.raises(RateLimited):
        b.acquire()
