"""The faults every venue shares: latency, bans, rate limits, hangs, 5xx and lost delete answers.

The gate decides *what* happens to a request; the venue module only renders it in its own wire
format (status, body, headers). Random draws come from one generator per venue, seeded from the
scenario, so a run with the same requests in the same order injects the same faults.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections import deque
from dataclasses import dataclass

from venuesim.scenario import VenueFaults

#: rate-limit answers older than this no longer count towards a ban
BAN_MEMORY_SECONDS = 60.0


class Fate(enum.Enum):
    """What the gate decided for one request, before the venue looks at it."""

    ADMIT = "admit"
    RATE_LIMITED = "rate_limited"
    BANNED = "banned"
    HANG = "hang"
    ERROR = "error"


class LostAnswer(enum.Enum):
    """How a delete that was carried out fails to reach the client."""

    DROP = "drop"  # the connection closes without an answer
    ERROR = "error"  # a 502 from the front door


@dataclass(frozen=True)
class Verdict:
    fate: Fate
    retry_after: int = 0  # whole seconds, as the Retry-After header carries them


@dataclass(frozen=True)
class RateStatus:
    """The venue's request budget as its rate-limit headers report it."""

    limit: int  # requests per second; 0 = unlimited
    remaining: int
    reset_at: float  # wall-clock seconds when a request is allowed again (now if it is)


class FaultGate:
    """Shared fault logic for one venue."""

    def __init__(self, faults: VenueFaults, seed: int, venue: str) -> None:
        self.faults = faults
        # a string seed is hashed deterministically by random.Random (not by hash())
        self._rng = random.Random(f"{seed}:{venue}")
        self._accepted: deque[float] = deque()  # monotonic times of requests let through, last second
        self._weights: deque[tuple[float, int]] = deque()  # (monotonic time, weight), last minute
        self._weight_total = 0  # the sum of the weights in ``_weights``, kept as they come and go
        self._limited: deque[float] = deque()  # monotonic times of rate-limit answers
        self._banned_until = 0.0
        rps = faults.requests_per_second
        #: requests allowed per second; 0 means unlimited
        self.limit = max(1, int(rps)) if rps > 0 else 0

    async def delay(self) -> None:
        """Wait the scenario's latency."""
        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000)

    def admit(self, weight: int = 1) -> Verdict:
        """Decide the fate of one request, in the order a venue's front door would."""
        now = time.monotonic()
        if now < self._banned_until:
            return Verdict(Fate.BANNED, math.ceil(self._banned_until - now))
        self._forget(now)
        if self.limit and len(self._accepted) >= self.limit:
            retry_after = max(1, math.ceil(self._accepted[0] + 1.0 - now))
            self._limited.append(now)
            if self.faults.ban_after_429s and len(self._limited) >= self.faults.ban_after_429s:
                self._banned_until = now + self.faults.ban_seconds
                self._limited.clear()
            return Verdict(Fate.RATE_LIMITED, retry_after)
        self._accepted.append(now)
        self._weights.append((now, weight))
        self._weight_total += weight
        # always draw both numbers so that changing one rate does not shift the other's sequence
        hang_draw, error_draw = self._rng.random(), self._rng.random()
        if hang_draw < self.faults.timeout_rate:
            return Verdict(Fate.HANG)
        if error_draw < self.faults.error_rate:
            return Verdict(Fate.ERROR)
        return Verdict(Fate.ADMIT)

    def lose_delete_answer(self) -> LostAnswer | None:
        """Whether the answer to a delete that was carried out gets lost, and how."""
        if self._rng.random() >= self.faults.lost_delete_rate:
            return None
        return LostAnswer.DROP if self._rng.random() < 0.5 else LostAnswer.ERROR

    def rate_status(self) -> RateStatus:
        """The budget left in the current one-second window."""
        now = time.monotonic()
        self._forget(now)
        wall = time.time()
        if not self.limit:
            return RateStatus(limit=0, remaining=0, reset_at=wall)
        remaining = max(0, self.limit - len(self._accepted))
        reset_at = wall if remaining else wall + max(0.0, self._accepted[0] + 1.0 - now)
        return RateStatus(limit=self.limit, remaining=remaining, reset_at=reset_at)

    def used_weight_last_minute(self) -> int:
        """Request weight admitted over the last minute (Binance's ``X-MBX-USED-WEIGHT-1M``)."""
        self._forget(time.monotonic())
        return self._weight_total

    def _forget(self, now: float) -> None:
        while self._accepted and self._accepted[0] <= now - 1.0:
            self._accepted.popleft()
        while self._weights and self._weights[0][0] <= now - 60.0:
            self._weight_total -= self._weights.popleft()[1]
        while self._limited and self._limited[0] <= now - BAN_MEMORY_SECONDS:
            self._limited.popleft()
