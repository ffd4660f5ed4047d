"""Which adapter serves which venue, and the platform's master credentials for each venue."""

from __future__ import annotations

from pathlib import Path

from activities.venues.base import Credentials, VenueAdapter
from activities.venues.binance import BinanceAdapter
from activities.venues.bybit import BybitAdapter
from activities.venues.coinbase import CoinbaseAdapter
from activities.venues.exchanges import ExchangeFactory
from activities.venues.gate import GateAdapter
from activities.venues.kraken import KrakenAdapter
from activities.venues.kucoin import KucoinAdapter
from activities.venues.mexc import MexcAdapter
from activities.venues.okx import OkxAdapter
from keyrevoke.errors import ConfigurationError, InputError, UnsupportedVenue
from keyrevoke.text_lines import read_json

ADAPTERS: dict[str, type[VenueAdapter]] = {
    adapter.venue: adapter
    for adapter in (
        BinanceAdapter,
        BybitAdapter,
        OkxAdapter,
        KucoinAdapter,
        GateAdapter,
        MexcAdapter,
        # no revocation API: every key is escalated to the exchange
        KrakenAdapter,
        CoinbaseAdapter,
    )
}


def load_master_credentials(path: Path) -> dict[str, Credentials]:
    """Read ``{venue: {"api_key", "secret", "passphrase"}}``; a missing file means no master keys."""
    if not path.exists():
        return {}
    try:
        raw = read_json(path, "master credentials file")
    except InputError as error:
        raise ConfigurationError(str(error)) from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: expected a JSON object of venue -> credentials")
    masters: dict[str, Credentials] = {}
    for venue, entry in raw.items():
        if not isinstance(entry, dict) or not entry.get("api_key") or not entry.get("secret"):
            raise ConfigurationError(f"{path}: venue {venue!r} needs api_key and secret")
        masters[venue] = Credentials(str(entry["api_key"]), str(entry["secret"]), str(entry.get("passphrase", "")))
    return masters


def build_adapter(venue: str, exchanges: ExchangeFactory, masters: dict[str, Credentials]) -> VenueAdapter:
    adapter_class = ADAPTERS.get(venue)
    if adapter_class is None:
        raise UnsupportedVenue(venue, "no revocation adapter for this venue")
    return adapter_class(exchanges, masters.get(venue))
