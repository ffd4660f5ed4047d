"""In-process pacing of requests to one venue, shared by every batch of a worker.

The Temporal server paces batch activities across all workers of a venue's task queue; the token
bucket paces the requests inside them, so that a batch of many keys does not burst, and the circuit
breaker stops every request to a venue that has banned us until the ban ends.
"""

from __future__ import annotations

import asyncio
import time

from keyrevoke.errors import VenueBanned


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


class CircuitBreaker:
    """Open after a ban: requests fail at once, without reaching the venue, until the ban is over.

    Calling a venue that banned us only extends the ban (Binance doubles it); failing fast makes the
    batch fail with the remaining time as its next retry delay, so Temporal waits it out.
    """

    DEFAULT_BAN_SECONDS = 60.0

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._open_until = 0.0

    def trip(self, retry_after: float | None) -> None:
        seconds = retry_after if retry_after is not None else self.DEFAULT_BAN_SECONDS
        self._open_until = max(self._open_until, time.monotonic() + seconds)

    def check(self) -> None:
        remaining = self._open_until - time.monotonic()
        if remaining > 0:
            raise VenueBanned(self.venue, "circuit open after a ban", remaining)
