"""One loopback HTTP server that speaks every simulated venue's protocol, one path prefix per venue."""

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
    """Serves the venues that have keys (or a master) below ``http://host:port/<venue>``.

    Faults come from ``scenario``; ``stats`` counts what was asked and answered. The server has no
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
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
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
        """Start serving; ``port`` 0 picks a free port (see ``base_url``)."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        app = web.Application()
        for protocol in self._protocols.values():
            protocol.register(app.router)
        # handler_cancellation: a client that gives up on a hanging request frees its handler
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving (requests still hanging are cut off)."""
        runner, self._runner = self._runner, None
        if runner is not None:
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
        return self._runner is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    # --- what callers need --------------------------------------------------------------------------

    def base_url(self, venue: str) -> str:
        """Where ``venue`` is served, e.g. ``http://127.0.0.1:8800/binance``."""
        if venue not in self._protocols:
            raise KeyError(f"the simulator does not serve venue {venue!r}")
        return f"http://{self.host}:{self.port}/{venue}"

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
