"""Pacing the requests to one venue: across workers, within a worker, and not at all during a ban.

The Temporal server paces batch activities across all workers of a venue's task queue
(``max_task_queue_activities_per_second``); the pacer spaces the requests inside them, across every
worker, through slots reserved in the shared ledger; the circuit breaker stops every request to a
venue that has banned us until the ban ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from keyrevoke.errors import VenueBanned


class SlotSource(Protocol):
    def reserve_slots(self, venue: str, count: int, interval: float) -> float:
        """Reserve ``count`` request slots ``interval`` seconds apart; returns when the first is (epoch s)."""


class VenuePacer:
    """Spaces one venue's requests ``1 / rate`` seconds apart across every worker of the venue.

    Two bounds, because a venue counts requests in a sliding (or fixed) second:

    * across workers, slots reserved in a store all workers share (the ledger), a few at a time, so
      that no two workers are handed the same moment;
    * within this worker, a send window of ``floor(rate)`` requests, where a request counts from
      the moment it leaves until one second after its answer (or its failure) came back. The venue
      counts a request at some moment between the two, so a request sent when fewer than
      ``floor(rate)`` are counted finds fewer than that in the venue's last second too, whatever
      the delays on the way: a stalled worker or venue that bunches requests together cannot push
      one second over the limit. Counting from the send alone left no margin: a request that
      reached the venue late shared a second with the ones sent a second after it, and got a 429.

    Requests take their turn for the next slot one at a time: urgent ones (revokes) before the others
    (probes), then the keys of higher inventory priority, then in order of arrival. Under a venue's
    limit the batches of a venue share its slots, and neither a revoke of a key already probed nor a
    probe of one of the riskiest keys should wait behind the next batches' probes.

    A slot that comes up more than ``LATE_SLOT_SECONDS`` late belongs to a moment that has passed:
    it is given up and a new one taken (a little throughput lost, never the limit). A lag shorter
    than that is absorbed by the send window instead of throwing the slot away, so a worker whose
    loop lags more than ``1 / rate`` still makes progress rather than reserving over and over.
    """

    LATE_SLOT_SECONDS = 0.1

    def __init__(self, slots: SlotSource, venue: str, rate: float, chunk: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.venue = venue
        self.interval = 1.0 / rate
        self.late_after = max(self.interval, self.LATE_SLOT_SECONDS)
        self.per_second = max(1, math.floor(rate))
        # At least two slots a time: the first may have passed by the time the reservation is back.
        self.chunk = chunk or max(2, min(50, int(rate / 20)))
        self.reservations = 0
        self._slots = slots
        self._reserved: deque[float] = deque()
        self._in_flight = 0
        self._answered: deque[float] = deque()
        self._an_answer = asyncio.Event()
        self._turns = Turns()

    @contextlib.asynccontextmanager
    async def request(self, urgent: bool = False, priority: int = 0) -> AsyncIterator[None]:
        """Wait for room for one request, which the block sends; it counts until a second after the block ends.

        ``urgent`` requests (revokes) take the next slot ahead of the others waiting; among equals, the
        key's higher ``priority`` goes first.
        """
        async with self._turns.turn(urgent, priority):
            await self._slot()
            await self._send_window()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._answered.append(time.monotonic())
            self._an_answer.set()

    async def _slot(self) -> None:
        """Wait for this request's slot among every worker's requests to the venue."""
        while True:
            now = time.time()
            while self._reserved and self._reserved[0] < now - self.late_after:
                self._reserved.popleft()
            if not self._reserved:
                first = await asyncio.to_thread(self._slots.reserve_slots, self.venue, self.chunk, self.interval)
                self.reservations += 1
                self._reserved.extend(first + i * self.interval for i in range(self.chunk))
            slot = self._reserved.popleft()
            await asyncio.sleep(max(0.0, slot - time.time()))
            if time.time() - slot < self.late_after:
                break

    async def _send_window(self) -> None:
        while True:
            now = time.monotonic()
            while self._answered and self._answered[0] <= now - 1.0:
                self._answered.popleft()
            if self._in_flight + len(self._answered) < self.per_second:
                self._in_flight += 1
                return
            # Room comes when the oldest answer is a second old, or sooner if all are still in flight and
            # one comes back. One waiter at a time (the turn), so clearing the event here is safe.
            self._an_answer.clear()
            wait = self._answered[0] + 1.0 - now if self._answered else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._an_answer.wait(), wait)


class Turns:
    """One holder at a time; the next is an urgent waiter before the others, then the higher priority,
    then the longest waiting."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, urgent: bool, priority: int = 0) -> AsyncIterator[None]:
        """Hold the turn while the block runs."""
        await self._take(urgent, priority)
        try:
            yield
        finally:
            self._pass_on()

    async def _take(self, urgent: bool, priority: int) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, -priority, next(self._arrivals), handed))
        try:
            await handed
        except asyncio.CancelledError:
            # Handed the turn just as it was cancelled: pass it on, or nobody would ever hold it again.
            if handed.done() and not handed.cancelled():
                self._pass_on()
            raise

    def _pass_on(self) -> None:
        while self._waiting:
            *_, handed = heapq.heappop(self._waiting)
            if not handed.done():  # a cancelled waiter's future is done: skip it
                handed.set_result(None)
                return
        self._held = False


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
