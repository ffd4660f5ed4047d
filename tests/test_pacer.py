"""The venue pacer: never more than the rate in any second of one worker's sends, nor of a stalling
venue's arrivals, no spinning, and revokes and the riskiest keys first.

The slots come from a real ledger on a SQLite file, as in a worker; the event loop is held up on
purpose (a blocking sleep), as a CPU-bound worker holds it up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.pacing import VenuePacer
from keyrevoke.crypto import KeyEncryptionKey, SecretBox
from keyrevoke.ledger import Ledger, open_ledger
from keyrevoke.ledger.store import PaceAsk, PaceGrant, fair_part
from tests.ledger_backends import sqlite_url

KEK = KeyEncryptionKey(bytes(range(32)))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = open_ledger(sqlite_url(tmp_path), SecretBox(KEK))
    try:
        yield opened
    finally:
        opened.close()


# The test reads the clock a moment after the pacer does, and a busy machine can preempt the test
# between the two: a few milliseconds of skew, which a venue's own jitter dwarfs. The windows checked
# are shorter than a second by more than that skew.
SKEW = 0.05


def _most_in_one_second(sent: list[float]) -> int:
    """The most requests sent within any (1 - SKEW) seconds."""
    sent = sorted(sent)
    most, start = 0, 0
    for end, at in enumerate(sent):
        while sent[start] <= at - (1.0 - SKEW):
            start += 1
        most = max(most, end - start + 1)
    return most


async def _send(pacer: VenuePacer, count: int, hold_loop_every: int = 0, hold_seconds: float = 0.0) -> list[float]:
    """``count`` concurrent requests; every ``hold_loop_every``-th blocks the loop after it goes out."""
    sent: list[float] = []

    async def one(n: int) -> None:
        async with pacer.request():
            sent.append(time.monotonic())
            if hold_loop_every and n % hold_loop_every == 0:
                time.sleep(hold_seconds)  # a busy worker: the loop wakes every sleeper late

    await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(count))), 60)
    return sent


async def test_a_lagging_loop_never_sends_more_than_the_rate_in_one_second(ledger: Ledger) -> None:
    # Holds shorter than the late-slot allowance: the slots that came up meanwhile are all kept, and
    # without the send window they would leave together on top of the on-time ones.
    pacer = VenuePacer(ledger, "binance", rate=100)
    sent = await _send(pacer, 400, hold_loop_every=10, hold_seconds=0.08)
    assert len(sent) == 400
    assert _most_in_one_second(sent) <= 100


class PastDueSlots:
    """A slot store whose every slot is already a little overdue (as with a worker whose clock runs behind)."""

    def reserve_pace(self, venue: str, count: int, interval: float, ask: PaceAsk) -> PaceGrant:
        return PaceGrant(time.time() - 0.05, ask.window)


async def test_overdue_slots_still_leave_at_most_the_rate_in_one_second() -> None:
    pacer = VenuePacer(PastDueSlots(), "binance", rate=25)
    sent = await _send(pacer, 80)
    assert len(sent) == 80
    assert _most_in_one_second(sent) <= 25


async def test_a_pace_far_above_what_the_loop_can_do_still_sends_everything(ledger: Ledger) -> None:
    # One slot per microsecond: every wake-up is later than the slot spacing. The requests must
    # still go out, with a handful of reservations, not one reservation after another.
    pacer = VenuePacer(ledger, "binance", rate=1_000_000)
    sent = await _send(pacer, 2_000, hold_loop_every=100, hold_seconds=0.02)
    assert len(sent) == 2_000
    assert pacer.reservations <= 2_000 // pacer.chunk + 25


async def test_two_pacers_of_one_venue_share_its_slots(ledger: Ledger, tmp_path: Path) -> None:
    # Two workers' pacers on one ledger: their slots never coincide, so together they keep the rate.
    other = open_ledger(sqlite_url(tmp_path), SecretBox(KEK))
    try:
        first, second = VenuePacer(ledger, "okx", rate=10), VenuePacer(other, "okx", rate=10)
        both = await asyncio.gather(_send(first, 15), _send(second, 15))
    finally:
        other.close()
    assert _most_in_one_second(both[0] + both[1]) <= 10 + 1


class StallingVenue:
    """A venue that counts requests in a sliding second, as the simulator does, and stalls.

    Each request reaches it after a random delay, and the venue stops taking requests for a while
    now and then, then takes the queued ones in one burst: arrivals bunch up that left evenly spaced.
    """

    def __init__(self, limit: int, seed: int) -> None:
        self.limit = limit
        self.arrivals: list[float] = []
        self.rejected = 0
        self._random = random.Random(seed)
        self._open = asyncio.Event()
        self._open.set()

    async def stall_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(self._random.uniform(0.2, 0.6))
            self._open.clear()
            await asyncio.sleep(self._random.uniform(0.05, 0.3))
            self._open.set()

    async def call(self) -> None:
        await asyncio.sleep(self._random.uniform(0.0, 0.05))
        await self._open.wait()
        now = time.monotonic()
        if sum(1 for at in self.arrivals if at > now - 1.0) >= self.limit:
            self.rejected += 1
        else:
            self.arrivals.append(now)
        await asyncio.sleep(self._random.uniform(0.0, 0.05))  # the answer's way back


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_three_workers_at_a_stalling_venue_never_see_more_than_its_limit_at_its_full_rate(
    tmp_path: Path, seed: int
) -> None:
    # Three workers' pacers (each its own ledger connection, as in three worker processes), each told
    # the venue's full limit: their windows are shares of one window, so the venue never sees more.
    ledgers = [open_ledger(sqlite_url(tmp_path), SecretBox(KEK)) for _ in range(3)]
    venue = StallingVenue(limit=10, seed=seed)
    pacers = [VenuePacer(ledger, "bybit", rate=10) for ledger in ledgers]

    async def one(pacer: VenuePacer) -> None:
        async with pacer.request():
            await venue.call()

    stalls = asyncio.create_task(venue.stall_now_and_then())
    try:
        await asyncio.wait_for(asyncio.gather(*(one(pacers[n % 3]) for n in range(90))), 60)
    finally:
        stalls.cancel()
        for ledger in ledgers:
            ledger.close()
    assert venue.rejected == 0
    assert len(venue.arrivals) == 90


def test_a_venues_window_is_held_in_parts_that_never_add_up_to_more(ledger: Ledger) -> None:
    def ask(pacer: str, using: int, wanted: int, active: float = 30.0) -> int:
        return ledger.reserve_pace("okx", 1, 0.1, PaceAsk(pacer, active, 10, using, wanted)).held

    assert ask("a", 0, 10) == 10  # alone: the whole window
    assert ask("b", 0, 10) == 0  # all of it is held: nothing yet
    # a may send within its fair part only; it holds what it still counts until that has left
    assert ask("a", 8, 10) == 5
    assert ask("b", 0, 10) == 2  # what a does not hold
    assert ask("a", 3, 10) == 5  # a's requests left the venue's second: it holds its fair part only
    assert ask("b", 2, 10) == 5
    assert ask("c", 0, 2, active=0.2) == 0  # a third that wants little waits for the others to give back
    assert ask("a", 5, 10) == 4
    assert ask("a", 4, 10) == 4
    assert ask("c", 0, 2, active=0.2) == 1
    time.sleep(0.3)  # c fell silent: it has left, and its part is free
    assert ask("a", 4, 10) == 5
    assert fair_part(10, 10, [10, 10]) == 4
    assert fair_part(10, 2, [10, 10]) == 2
    assert fair_part(10, 10, [2, 10]) == 4
    assert fair_part(10, 0, [10]) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_stalling_venue_never_sees_more_than_its_limit_at_its_full_rate(ledger: Ledger, seed: int) -> None:
    # The pacer set to the venue's own limit: with send times alone in the window, the requests a
    # stall held back would share a second at the venue with the ones sent a second later.
    venue = StallingVenue(limit=10, seed=seed)
    pacer = VenuePacer(ledger, "bybit", rate=10)

    async def one() -> None:
        async with pacer.request():
            await venue.call()

    stalls = asyncio.create_task(venue.stall_now_and_then())
    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(60))), 60)
    finally:
        stalls.cancel()
    assert venue.rejected == 0
    assert len(venue.arrivals) == 60


async def test_revokes_take_the_next_slots_ahead_of_waiting_probes(ledger: Ledger) -> None:
    pacer = VenuePacer(ledger, "okx", rate=20)
    order: list[str] = []

    async def one(name: str, urgent: bool) -> None:
        async with pacer.request(urgent):
            order.append(name)

    probes = [asyncio.create_task(one(f"probe-{n}", False)) for n in range(8)]
    while not order:  # the first probe is out and the others wait for their slots
        await asyncio.sleep(0.005)
    out_already = len(order)
    revokes = [asyncio.create_task(one(f"revoke-{n}", True)) for n in range(3)]
    await asyncio.wait_for(asyncio.gather(*probes, *revokes), 30)
    first_revoke = order.index("revoke-0")
    # Only the probe already holding the turn goes between the revokes' arrival and the revokes.
    assert order[first_revoke : first_revoke + 3] == ["revoke-0", "revoke-1", "revoke-2"]
    assert first_revoke <= out_already + 1
    assert [name for name in order if name.startswith("probe")] == [f"probe-{n}" for n in range(8)]


async def test_among_waiting_probes_the_riskier_keys_go_first(ledger: Ledger) -> None:
    pacer = VenuePacer(ledger, "okx", rate=20)
    order: list[str] = []

    async def one(name: str, priority: int) -> None:
        async with pacer.request(priority=priority):
            order.append(name)

    low = [asyncio.create_task(one(f"low-{n}", 0)) for n in range(6)]
    while not order:
        await asyncio.sleep(0.005)
    out_already = len(order)
    high = [asyncio.create_task(one(f"high-{n}", 10)) for n in range(3)]
    await asyncio.wait_for(asyncio.gather(*low, *high), 30)
    first_high = order.index("high-0")
    assert order[first_high : first_high + 3] == ["high-0", "high-1", "high-2"]
    assert first_high <= out_already + 1


async def test_cancelled_waiters_hold_nothing_up_and_leave_no_count_behind(ledger: Ledger) -> None:
    pacer = VenuePacer(ledger, "kucoin", rate=20)
    sent: list[str] = []

    async def one(name: str, urgent: bool = False) -> None:
        async with pacer.request(urgent):
            sent.append(name)

    waiting = [asyncio.create_task(one(f"probe-{n}")) for n in range(6)]
    doomed = [asyncio.create_task(one(f"doomed-{n}", urgent=True)) for n in range(3)]
    await asyncio.sleep(0)
    for task in doomed:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*waiting), 30)
    assert sorted(sent) == [f"probe-{n}" for n in range(6)]
    assert all(task.cancelled() for task in doomed)
    # Everything answered: nothing is counted as in flight, and a newcomer goes out.
    assert pacer._in_flight == 0
    await asyncio.wait_for(one("later"), 5)
    assert sent[-1] == "later"


class BrokenSlots:
    """A slot store that cannot answer (a ledger that is down)."""

    def reserve_pace(self, venue: str, count: int, interval: float, ask: PaceAsk) -> PaceGrant:
        raise OSError("the ledger is down")


async def test_a_slot_store_that_fails_fails_the_waiting_requests_instead_of_hanging() -> None:
    pacer = VenuePacer(BrokenSlots(), "gate", rate=5)

    async def one() -> None:
        async with pacer.request():
            raise AssertionError("no slot, so no request may go out")

    results = await asyncio.wait_for(asyncio.gather(one(), one(), return_exceptions=True), 5)
    assert all(isinstance(result, OSError) and "ledger is down" in str(result) for result in results)


def test_a_rate_must_be_positive(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        VenuePacer(ledger, "binance", rate=0)
