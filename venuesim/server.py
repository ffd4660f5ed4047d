"""Loopback HTTP servers that speak every simulated venue's protocol, one port per venue.

Each venue is served at the root of its own port, with the venue's real paths: a client signs the
path it sends, as it would at the venue, and any client written from the venue's documentation
works (with a path prefix per venue, a venue that signs the path would refuse such a client).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import ClassVar

from aiohttp import web

from venuesim.binance import BinanceProtocol
from venuesim.bybit import BybitProtocol
from venuesim.coinbase import CoinbaseProtocol
from venuesim.faults import FaultGate
from venuesim.gate import GateProtocol
from venuesim.kraken import KrakenProtocol
from venuesim.kucoin import KucoinProtocol
from venuesim.mexc import MexcProtocol
from venuesim.okx import OkxProtocol
from venuesim.protocol import VenueProtocol
from venuesim.scenario import Scenario
from venuesim.state import SimKey, SimMaster, VenueState
from venuesim.stats import SimStats

#: every venue the simulator speaks; a new venue is one module and one line here
PROTOCOLS: Mapping[str, type[VenueProtocol]] = {
    BinanceProtocol.name: BinanceProtocol,
    BybitProtocol.name: BybitProtocol,
    OkxProtocol.name: OkxProtocol,
    KucoinProtocol.name: KucoinProtocol,
    GateProtocol.name: GateProtocol,
    MexcProtocol.name: MexcProtocol,
    # no revocation API: their keys are revoked by the exchange (``VenueSimulator.revoke_by_exchange``)
    KrakenProtocol.name: KrakenProtocol,
    CoinbaseProtocol.name: CoinbaseProtocol,
}


class VenueSimulator:
    """Serves each venue that has keys (or a master) at the root of its own port: ``http://host:<port>``.

    ``port`` 0 picks a free port per venue; any other ``port`` is the first of a fixed block, where each
    venue has its place in ``PROTOCOLS`` (binance ``port``, bybit ``port + 1``, ... coinbase ``port + 7``),
    so a venue's URL does not depend on which other venues are served.

    Faults come from ``scenario``; ``stats`` counts what was asked and answered. The servers have no
    access log on purpose: request lines hold API keys (the Binance, KuCoin and MEXC deletes pass the
    sub-account's key in the query string, KuCoin's its passphrase too; Gate's puts it in the path).
    """

    protocols: ClassVar[Mapping[str, type[VenueProtocol]]] = PROTOCOLS

    def __init__(
        self,
        keys: Iterable[SimKey],
        masters: Iterable[SimMaster] = (),
        scenario: Scenario | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.scenario = scenario or Scenario()
        self.host = host
        self._requested_port = port
        self._ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self.stats = SimStats()
        self._states: dict[str, VenueState] = {}
        self._venues_with_keys: list[str] = []

        keys = list(keys)
        masters = list(masters)
        for venue in {key.venue for key in keys} | {master.venue for master in masters}:
            if venue not in self.protocols:
                known = ", ".join(sorted(self.protocols))
                raise ValueError(f"the simulator does not speak venue {venue!r} (it speaks {known})")
        for master in masters:
            if master.venue in self._states:
                raise ValueError(f"more than one master for venue {master.venue!r}")
            self._state(master.venue).master = master
        for key in keys:
            state = self._state(key.venue)
            if key.venue not in self._venues_with_keys:
                self._venues_with_keys.append(key.venue)
            deleted = key.key_id in self.scenario.for_venue(key.venue).already_deleted_keys
            state.add(key, deleted=deleted)

        self._protocols: dict[str, VenueProtocol] = {}
        for venue, state in self._states.items():
            faults = self.scenario.for_venue(venue)
            gate = FaultGate(faults, self.scenario.seed, venue)
            protocol = self.protocols[venue](state, gate, self.stats)
            for record in state.records():
                protocol.validate_key(record.key)
            self._protocols[venue] = protocol

    def _state(self, venue: str) -> VenueState:
        state = self._states.get(venue)
        if state is None:
            faults = self.scenario.for_venue(venue)
            state = self._states[venue] = VenueState(
                venue=venue,
                revoke_grace_seconds=faults.revoke_grace_seconds,
                ip_blocked_key_ids=faults.ip_blocked_keys,
            )
        return state

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving, one port per venue; ``port`` 0 picks free ports (see ``base_url``)."""
        if self._runners:
            raise RuntimeError("the simulator is already running")
        venues = [venue for venue in self.protocols if venue in self._protocols]
        try:
            for venue in venues:
                port = self._requested_port + list(self.protocols).index(venue) if self._requested_port else 0
                runner = await self._serve(self._protocols[venue], port)
                self._runners.append(runner)
                self._ports[venue] = int(runner.addresses[0][1])
        except BaseException:
            await self.stop()
            raise

    async def _serve(self, protocol: VenueProtocol, port: int) -> web.AppRunner:
        app = web.Application()
        protocol.register(app.router)
        # handler_cancellation: a client that gives up on a hanging request frees its handler
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    async def stop(self) -> None:
        """Stop serving (requests still hanging are cut off)."""
        runners, self._runners = self._runners, []
        self._ports.clear()
        for runner in runners:
            await runner.cleanup()

    async def __aenter__(self) -> VenueSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return bool(self._runners)

    def port(self, venue: str) -> int:
        """The port ``venue`` is served on."""
        if venue not in self._protocols:
            raise KeyError(f"the simulator does not serve venue {venue!r}")
        if not self._ports:
            raise RuntimeError("the simulator has not been started")
        return self._ports[venue]

    # --- what callers need --------------------------------------------------------------------------

    def base_url(self, venue: str) -> str:
        """Where ``venue`` is served, e.g. ``http://127.0.0.1:8800``: its paths are the venue's own."""
        return f"http://{self.host}:{self.port(venue)}"

    @property
    def venue_urls(self) -> dict[str, str]:
        """Base URL of every venue that has keys, for keyrevoke's ``venue_urls`` setting."""
        return {venue: self.base_url(venue) for venue in self._venues_with_keys}

    def is_live(self, venue: str, api_key: str) -> bool:
        """The key still works: not deleted, or deleted less than the venue's grace period ago.

        A key behind the scenario's IP block is live: it exists, only not from here.
        """
        state = self._states.get(venue)
        return state is not None and state.is_live(api_key)

    def revoke_by_exchange(self, venue: str, key_ids: Iterable[str] | None = None) -> int:
        """Delete keys of ``venue`` as the exchange's security team does, in bulk, outside its API.

        ``key_ids`` names the keys (by ``SimKey.key_id``); None means every key of the venue (its
        master stays). A deleted key keeps working for the venue's ``revoke_grace_seconds``, as after
        an API delete. Returns how many keys this call deleted: keys deleted before are left as they
        were and not counted. These deletions are not API deletes and are not counted in
        ``stats.deletes``. An unknown venue or key_id raises ``KeyError`` and deletes nothing.
        """
        state = self._states.get(venue)
        if state is None:
            raise KeyError(f"the simulator has no keys for venue {venue!r}")
        records = list(state.records())
        if isinstance(key_ids, str):
            raise TypeError("key_ids is a collection of key_ids, not one key_id")
        if key_ids is not None:
            wanted = set(key_ids)
            unknown = wanted - {record.key.key_id for record in records}
            if unknown:
                raise KeyError(f"venue {venue!r} has no keys {sorted(unknown)}")
            records = [record for record in records if record.key.key_id in wanted]
        now = time.time()
        return sum(state.delete(record, now) for record in records)


async def serve_forever(sim: VenueSimulator, stop: asyncio.Event | None = None) -> None:
    """Run ``sim`` until SIGINT or SIGTERM (or until ``stop`` is set), then stop it.

    Signal handlers are installed only where the loop allows it (the main thread on POSIX);
    elsewhere only ``stop`` ends the run.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    try:
        if not sim.running:
            await sim.start()
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await sim.stop()
