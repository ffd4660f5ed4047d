"""Pacing the requests to one venue: across workers, within a worker, and not at all during a ban.

The Temporal server paces batch activities across all workers of a venue's task queue
(``max_task_queue_activities_per_second``); the pacer spaces the requests inside them, across every
worker, through slots reserved in the shared ledger; the circuit breaker stops every request to a
venue that has banned us until the ban ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from keyrevoke.errors import VenueBanned


class SlotSource(Protocol):
    def reserve_slots(self, venue: str, count: int, interval: float) -> float:
        """Reserve ``count`` request slots ``interval`` seconds apart; returns when the first is (epoch s)."""


class VenuePacer:
    """Spaces one venue's requests ``1 / rate`` seconds apart across every worker of the venue.

    The slots are reserved in a store all workers share (the ledger), a few at a time, and each is
    used at its own moment: however many workers run, the venue never sees more than ``rate``
    requests in any second. A slot reserved but not used is lost (a little throughput), never
    doubled (the limit holds).
    """

    def __init__(self, slots: SlotSource, venue: str, rate: float, chunk: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.venue = venue
        self.interval = 1.0 / rate
        # At least two slots a time: the first may have passed by the time the reservation is back.
        self.chunk = chunk or max(2, min(50, int(rate / 20)))
        self._slots = slots
        self._reserved: list[float] = []
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for this request's slot.

        A slot is used only near its time: a process too busy to wake up on time (its event loop
        held up) would otherwise fire several late slots at once, in one burst; such a request takes
        a new slot instead.
        """
        while True:
            async with self._lock:
                now = time.time()
                while self._reserved and self._reserved[0] < now - self.interval:
                    self._reserved.pop(0)  # slots that passed unused: never spend them late, in a burst
                if not self._reserved:
                    first = await asyncio.to_thread(self._slots.reserve_slots, self.venue, self.chunk, self.interval)
                    self._reserved = [first + i * self.interval for i in range(self.chunk)]
                slot = self._reserved.pop(0)
            await asyncio.sleep(max(0.0, slot - time.time()))
            if time.time() - slot < self.interval:
                return


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
