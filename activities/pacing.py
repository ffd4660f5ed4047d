"""In-process pacing of requests to one venue: a token bucket shared by every batch of a worker.

The Temporal server paces batch activities across all workers of a venue's task queue; this bucket
paces the requests inside them, so that a batch of many keys does not burst.
"""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Allows ``rate`` acquisitions per second on average, with bursts of at most ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.burst
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
