"""Client-side flow control for remote endpoints: concurrency, requests/min, tokens/min.

One ``AdaptiveLimiter`` is shared by every request of a run. A 429 slows the whole run, not
only the request that got it: everyone waits out the ``Retry-After`` and the number of
requests in flight is halved, then grows back by one per ``limit`` successes (AIMD, as TCP
does), so a run settles just under the provider's real limit instead of hammering it.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``rate_per_min`` units per minute, with at most one minute's worth banked."""

    def __init__(self, rate_per_min: float):
        self.rate = rate_per_min / 60.0
        self.capacity = float(rate_per_min)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float) -> None:
        n = min(n, self.capacity)  # a request bigger than a minute's budget still goes, alone
        while True:
            self._refill()
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


class AdaptiveLimiter:
    def __init__(self, concurrency: int, rpm: float | None = None, tpm: float | None = None):
        self.max_concurrency = concurrency
        self.limit = concurrency
        self.in_flight = 0
        self.successes = 0
        self.cond = asyncio.Condition()
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self.pause_until = 0.0
        self.last_cut = 0.0
        self.rate_limited_count = 0

    async def acquire(self, est_tokens: int) -> None:
        async with self.cond:
            await self.cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        try:
            while (wait := self.pause_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if self.requests:
                await self.requests.take(1)
            if self.tokens:
                await self.tokens.take(est_tokens)
        except BaseException:
            await self.release(ok=False)
            raise

    async def release(self, ok: bool) -> None:
        async with self.cond:
            self.in_flight -= 1
            if ok:
                self.successes += 1
                if self.limit < self.max_concurrency and self.successes >= self.limit:
                    self.limit += 1
                    self.successes = 0
            self.cond.notify_all()

    def rate_limited(self, retry_after: float) -> None:
        """A 429: everyone pauses ``retry_after`` s; concurrency is halved once per second."""
        now = time.monotonic()
        self.rate_limited_count += 1
        self.pause_until = max(self.pause_until, now + retry_after)
        if now - self.last_cut > 1.0:
            self.limit = max(1, self.limit // 2)
            self.successes = 0
            self.last_cut = now
