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
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from keyrevoke.errors import VenueBanned
from keyrevoke.ledger.store import PaceAsk, PaceGrant

log = logging.getLogger(__name__)

class SlotSource(Protocol):
    def reserve_pace(self, venue: str, count: int, interval: float, ask: PaceAsk) -> PaceGrant:
        """Reserve ``count`` slots ``interval`` s apart (none for 0), and the pacer's part of the venue's window."""


class VenuePacer:
    """Spaces one venue's requests ``1 / rate`` seconds apart across every worker of the venue.

    Two bounds, because a venue counts requests in a sliding (or fixed) second:

    * across workers, slots reserved in a store all workers share (the ledger), a few at a time, so
      that no two workers are handed the same moment;
    * a send window of ``floor(rate)`` requests for the whole venue, where a request counts from
      the moment it leaves until one second after its answer (or its failure) came back. The venue
      counts a request at some moment between the two, so a request sent when fewer than
      ``floor(rate)`` are counted finds fewer than that in the venue's last second too, whatever
      the delays on the way: a stalled worker or venue that bunches requests together cannot push
      one second over the limit. Counting from the send alone left no margin: a request that
      reached the venue late shared a second with the ones sent a second after it, and got a 429.
      The window is the venue's, held in parts by its workers' pacers through the ledger: each
      counts its own requests against the part it holds, the parts never add up to more than the
      window (the ledger hands them out in transactions), a pacer asks for more when it has more
      to send, and gives back what it holds beyond its fair part, never below what it still counts.
      A pacer blocked for want of a part asks again every ``RECHECK_SECONDS``; one that falls
      silent for ``active_seconds`` has left, and its part is free.

    One dispatcher per pacer hands each slot, when it comes up, to the waiting request that goes
    first: an urgent one (a revoke) before the others (probes), then the key of higher inventory
    priority, then the longest waiting. Under a venue's limit the batches of a venue share its slots,
    and neither a revoke of a key already probed nor a probe of one of the riskiest keys should wait
    behind the next batches' probes. The slots that are due when the dispatcher wakes are all handed
    out at once, so a busy event loop does not cost one of its turns per request.

    A slot that comes up more than ``LATE_SLOT_SECONDS`` late belongs to a moment that has passed:
    it is given up and a new one taken (a little throughput lost, never the limit). A lag shorter
    than that is absorbed by the send window instead of throwing the slot away, so a worker whose
    loop lags more than ``1 / rate`` still makes progress rather than reserving over and over.
    """

    LATE_SLOT_SECONDS = 0.1
    ACTIVE_MARGIN_SECONDS = 3.0
    RECHECK_SECONDS = 0.1

    def __init__(self, slots: SlotSource, venue: str, rate: float, chunk: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.venue = venue
        self.interval = 1.0 / rate
        self.late_after = max(self.interval, self.LATE_SLOT_SECONDS)
        self.per_second = max(1, math.floor(rate))
        # At least two slots a time: the first may have passed by the time the reservation is back.
        self.chunk = chunk or max(2, min(50, int(rate / 20)))
        # Active long enough to cover its chunk of slots and the second its last answers still count
        # (a pacer asks again at least every RECHECK_SECONDS while it waits): its part of the window
        # is not handed to others while its requests may still count at the venue.
        self.active_seconds = self.chunk * self.interval + self.ACTIVE_MARGIN_SECONDS
        self.pacer_id = uuid.uuid4().hex
        self.held = 0
        self._asked_at = 0.0
        self.reservations = 0
        self._slots = slots
        self._reserved: deque[float] = deque()
        self._in_flight = 0
        self._answered: deque[float] = deque()
        self._an_answer = asyncio.Event()
        self._waiting: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self._releaser: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def request(self, urgent: bool = False, priority: int = 0) -> AsyncIterator[None]:
        """Wait for room for one request, which the block sends; it counts until a second after the block ends.

        ``urgent`` requests (revokes) take the next slot ahead of the others waiting; among equals, the
        key's higher ``priority`` goes first.
        """
        await self._granted(urgent, priority)
        try:
            yield
        finally:
            self._done()

    async def _granted(self, urgent: bool, priority: int) -> None:
        """Wait until the dispatcher hands this request a slot (counted in the window from then on)."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, -priority, next(self._arrivals), granted))
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._done()  # handed a slot just as it was cancelled: it counts as sent, to be safe
            raise

    def _done(self) -> None:
        """A request's answer (or failure) is back: it leaves the window a second from now."""
        self._in_flight -= 1
        self._answered.append(time.monotonic())
        self._an_answer.set()

    async def _dispatch(self) -> None:
        try:
            while self._next_waiter() is not None:
                await self._slot()
                await self._send_window()
                granted = self._next_waiter()
                if granted is None:  # every waiter went away meanwhile: the slot is not used
                    self._in_flight -= 1
                    break
                heapq.heappop(self._waiting)
                granted.set_result(None)
        except BaseException as error:
            # Nobody may wait for ever on a dispatcher that is gone: the waiters get its failure.
            for *_, waiter in self._waiting:
                if waiter.done():
                    continue
                if isinstance(error, Exception):
                    waiter.set_exception(error)
                else:
                    waiter.cancel()
            self._waiting.clear()
            if not isinstance(error, Exception):
                raise
        finally:
            # No await between the last look at the waiters and this: a newcomer starts a new dispatcher.
            self._dispatcher = None
        if self.held and self._releaser is None:
            self._releaser = asyncio.create_task(self._release_when_drained())

    async def _release_when_drained(self) -> None:
        """Nothing left to send: give back the part of the window not in use now, and the rest once no
        request of this pacer counts at the venue any more."""
        try:
            if self._in_flight + len(self._answered) < self.held:
                await self._ask(0)
            while self._dispatcher is None and (self._in_flight or self._answered):
                now = time.monotonic()
                while self._answered and self._answered[0] <= now - 1.0:
                    self._answered.popleft()
                await asyncio.sleep(self._answered[0] + 1.0 - now if self._answered else self.RECHECK_SECONDS)
            if self._dispatcher is None and not self._waiting:
                await self._ask(0)
        except Exception as error:  # giving back is a courtesy: an unclaimed part expires anyway
            # The worker may be shutting down (its ledger closed): the part lapses within seconds.
            log.debug("pacer for %s: the window part was not given back (%s)", self.venue, type(error).__name__)
        finally:
            self._releaser = None

    def _next_waiter(self) -> asyncio.Future[None] | None:
        """The waiter that goes next, dropping the ones cancelled while they waited."""
        while self._waiting:
            waiter = self._waiting[0][-1]
            if not waiter.done():
                return waiter
            heapq.heappop(self._waiting)
        return None

    async def _slot(self) -> None:
        """Wait for the next slot among every worker's requests to the venue (at once if it is due)."""
        while True:
            now = time.time()
            while self._reserved and self._reserved[0] < now - self.late_after:
                self._reserved.popleft()
            if not self._reserved:
                first = await self._ask(self.chunk)
                self.reservations += 1
                self._reserved.extend(first + i * self.interval for i in range(self.chunk))
            slot = self._reserved.popleft()
            if slot > time.time():
                await asyncio.sleep(slot - time.time())
            if time.time() - slot < self.late_after:
                return

    async def _ask(self, count: int) -> float:
        """Reserve ``count`` slots and ask for this pacer's part of the window; returns the first slot."""
        using = self._in_flight + len(self._answered)
        # What it could count at once: its counted requests and every request waiting for a slot.
        wanted = min(self.per_second, using + len(self._waiting))
        ask = PaceAsk(self.pacer_id, self.active_seconds, self.per_second, using, wanted)
        grant = await asyncio.to_thread(self._slots.reserve_pace, self.venue, count, self.interval, ask)
        self.held = grant.held
        self._asked_at = time.monotonic()
        return grant.first

    async def _send_window(self) -> None:
        """Wait for room in the part of the venue's window this pacer holds, and count the next request in it."""
        while True:
            now = time.monotonic()
            while self._answered and self._answered[0] <= now - 1.0:
                self._answered.popleft()
            counted = self._in_flight + len(self._answered)
            if counted < self.held:
                self._in_flight += 1
                return
            # Room comes when the oldest answer is a second old, or sooner if all are still in flight and
            # one comes back. Only the dispatcher waits here, so clearing the event is safe.
            self._an_answer.clear()
            wait = self._answered[0] + 1.0 - now if self._answered else None
            if counted < self.per_second:
                # Less than the whole window is counted here: another pacer may give back a part meanwhile.
                due = self._asked_at + self.RECHECK_SECONDS - now
                if due <= 0:
                    await self._ask(0)
                    continue
                wait = due if wait is None else min(wait, due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._an_answer.wait(), wait)


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
