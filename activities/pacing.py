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
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from keyrevoke.errors import VenueBanned


class Grant(Protocol):
    @property
    def first(self) -> float: ...
    @property
    def pacers(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def usable_from(self) -> float: ...


class SlotSource(Protocol):
    def reserve_pace(
        self, venue: str, count: int, interval: float, pacer: str, active_seconds: float, join_seconds: float
    ) -> Grant:
        """Reserve ``count`` slots ``interval`` s apart and keep ``pacer`` active; the first slot and the pacers."""


def window_share(per_second: int, pacers: int, rank: int) -> int:
    """This pacer's part of a venue's ``per_second`` window, split among ``pacers`` (shares add up to it).

    Never less than one: with more pacers at a venue than requests in its second, each still sends
    one at a time (rather than one waiting for ever), and the slots still space them ``1 / rate`` apart.
    """
    return max(1, per_second // pacers + (1 if rank < per_second % pacers else 0))


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
      Each worker's pacer counts its own requests against its share of that window: the pacers
      active at a venue (those that reserved slots in the last ``active_seconds``) are listed in the
      ledger with the slots, and the shares add up to ``floor(rate)``. A pacer with nothing to send
      drops out of the list, and the others' shares grow at their next reservation; a pacer that
      joins others uses its share only after ``join_seconds``, by when theirs have shrunk.

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
    JOIN_WAIT_SECONDS = 2.5

    def __init__(self, slots: SlotSource, venue: str, rate: float, chunk: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.venue = venue
        self.interval = 1.0 / rate
        self.late_after = max(self.interval, self.LATE_SLOT_SECONDS)
        self.per_second = max(1, math.floor(rate))
        # At least two slots a time: the first may have passed by the time the reservation is back.
        self.chunk = chunk or max(2, min(50, int(rate / 20)))
        # Listed as active long enough to cover its chunk of slots, a wait for its window and the
        # second its last answers still count: its share is not handed to others while it may use it.
        self.active_seconds = self.chunk * self.interval + self.ACTIVE_MARGIN_SECONDS
        # A pacer joining others waits until they have all reserved again (a window's wait at most),
        # taken their smaller shares, and what they sent beyond them has left the venue's second.
        self.join_seconds = self.chunk * self.interval + self.JOIN_WAIT_SECONDS
        self.pacer_id = uuid.uuid4().hex
        self.share = self.per_second
        self._usable_from = 0.0
        self.reservations = 0
        self._slots = slots
        self._reserved: deque[float] = deque()
        self._in_flight = 0
        self._answered: deque[float] = deque()
        self._an_answer = asyncio.Event()
        self._waiting: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None

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
                grant = await asyncio.to_thread(
                    self._slots.reserve_pace,
                    self.venue,
                    self.chunk,
                    self.interval,
                    self.pacer_id,
                    self.active_seconds,
                    self.join_seconds,
                )
                self.share = window_share(self.per_second, grant.pacers, grant.rank)
                self._usable_from = grant.usable_from
                first = grant.first
                self.reservations += 1
                self._reserved.extend(first + i * self.interval for i in range(self.chunk))
            slot = self._reserved.popleft()
            if slot > time.time():
                await asyncio.sleep(slot - time.time())
            if time.time() - slot < self.late_after:
                return

    async def _send_window(self) -> None:
        """Wait for room in this worker's share of the venue's window, and count the next request in it."""
        if self._usable_from > time.time():
            await asyncio.sleep(self._usable_from - time.time())
        while True:
            now = time.monotonic()
            while self._answered and self._answered[0] <= now - 1.0:
                self._answered.popleft()
            if self._in_flight + len(self._answered) < self.share:
                self._in_flight += 1
                return
            # Room comes when the oldest answer is a second old, or sooner if all are still in flight and
            # one comes back. Only the dispatcher waits here, so clearing the event is safe.
            self._an_answer.clear()
            wait = self._answered[0] + 1.0 - now if self._answered else None
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
