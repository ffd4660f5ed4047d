"""A loopback venue simulator: each supported exchange's REST protocol, with injected faults.

It verifies signatures exactly as the venue does, answers with the venue's own error bodies and
HTTP statuses (so ccxt's error mapping runs for real), enforces rate limits with the venue's
headers, and injects the scenario's faults. It is how tests and the demo meet real client code; it
is not a stand-in for a venue in production.

One module per venue (``venuesim.binance``, ``venuesim.bybit``, ``venuesim.okx``, ``venuesim.kucoin``,
``venuesim.gate``, ``venuesim.mexc``, and ``venuesim.kraken`` and ``venuesim.coinbase``, which have no
revocation API: ``VenueSimulator.revoke_by_exchange`` deletes keys as the exchange's security team
would); the faults, the key state and the server are shared.
"""

from venuesim.scenario import Scenario, VenueFaults
from venuesim.server import VenueSimulator, serve_forever
from venuesim.state import SimKey, SimMaster
from venuesim.stats import SimStats

__all__ = ["Scenario", "SimKey", "SimMaster", "SimStats", "VenueFaults", "VenueSimulator", "serve_forever"]
