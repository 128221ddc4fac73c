"""Client-side flow control: the token buckets and the adaptive concurrency limit (AIMD)."""

import asyncio
import time

import pytest

from gpt4llm.backends import limits
from gpt4llm.backends.limits import AdaptiveLimiter, TokenBucket


class Clock:
    """A fake monotonic clock: ``sleep`` advances it instead of waiting."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def monotonic(self):
        return self.now

    async def sleep(self, s):
        self.slept.append(s)
        self.now += s


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(limits.time, "monotonic", c.monotonic)
    monkeypatch.setattr(limits.asyncio, "sleep", c.sleep)
    return c


def test_a_bucket_banks_a_minute_and_then_paces(clock):
    b = TokenBucket(60)  # one per second, at most 60 banked
    asyncio.run(_take(b, 60))
    assert clock.slept == []  # the banked minute goes at once
    asyncio.run(_take(b, 3))
    assert sum(clock.slept) == pytest.approx(3.0)  # then one per second


def test_a_request_bigger_than_a_minute_still_goes_alone(clock):
    b = TokenBucket(1000)
    asyncio.run(b.take(5000))  # capped at the capacity: waits for a full bucket, not forever
    assert b.tokens == pytest.approx(0.0) and clock.slept == []


def test_the_bucket_refills_with_time(clock):
    b = TokenBucket(120)
    asyncio.run(_take(b, 120))
    clock.now += 30  # half a minute: 60 back
    asyncio.run(_take(b, 60))
    assert clock.slept == []


async def _take(b, n):
    for _ in range(n):
        await b.take(1)


def test_concurrency_is_capped_halved_on_429_and_grows_back():
    async def scenario():
        lim = AdaptiveLimiter(8)
        peak, inside = 0, 0

        async def one():
            nonlocal peak, inside
            await lim.acquire(10)
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1
            await lim.release(ok=True)

        await asyncio.gather(*(one() for _ in range(40)))
        assert peak == 8 and lim.in_flight == 0
        lim.rate_limited(0.0)
        assert lim.limit == 4 and lim.rate_limited_count == 1
        lim.rate_limited(0.0)  # a second 429 within the second does not halve again
        assert lim.limit == 4
        for _ in range(4 + 5 + 6 + 7):  # one step per window of `limit` successes
            await lim.acquire(1)
            await lim.release(ok=True)
        assert lim.limit == 8
        await lim.acquire(1)
        await lim.release(ok=False)  # a failure is not a success
        assert lim.successes == 0 and lim.limit == 8

    asyncio.run(scenario())


def test_a_429_pauses_everyone_for_its_retry_after():
    async def scenario():
        lim = AdaptiveLimiter(4)
        lim.rate_limited(0.2)
        t0 = time.monotonic()
        await asyncio.gather(*(lim.acquire(1) for _ in range(2)))  # the limit is halved to 2 by the 429
        return time.monotonic() - t0

    assert asyncio.run(scenario()) >= 0.19


def test_rpm_and_tpm_buckets_are_used(clock):
    lim = AdaptiveLimiter(16, rpm=60, tpm=600)

    async def scenario():
        for _ in range(70):
            await lim.acquire(10)
            await lim.release(ok=True)

    asyncio.run(scenario())
    # 60 requests and 600 tokens banked: the 61st to 70th wait one second each (rpm binds; tpm allows 1 per s too).
    assert sum(clock.slept) == pytest.approx(10.0, rel=0.05)
