"""Which venues keyrevoke can revoke at, and how: the inventory's vocabulary.

This table is the inventory's view (no ccxt here, so that importing and the CLI stay fast); the adapter
registry checks at start-up that every venue and method named here has an adapter that accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VenueMethods:
    """Revoke methods a venue accepts; the first is used for inventory rows that leave ``method`` empty."""

    methods: tuple[str, ...]
    needs_passphrase: bool = False

    @property
    def default(self) -> str:
        return self.methods[0]


SUPPORTED_VENUES: dict[str, VenueMethods] = {
    # the broker (the platform's master account) deletes the sub-account's key
    "binance": VenueMethods(("broker",)),
    # the leaked key deletes itself, or the platform's master account deletes its sub-account's key
    "bybit": VenueMethods(("self", "sub")),
    # the platform's master account deletes its sub-account's key (every private call needs a passphrase)
    "okx": VenueMethods(("sub",), needs_passphrase=True),
    # the master deletes its sub-account's key, giving that key's own passphrase
    "kucoin": VenueMethods(("sub",), needs_passphrase=True),
    # the platform's main account deletes its sub-account's key
    "gate": VenueMethods(("sub",)),
    "mexc": VenueMethods(("sub",)),
    # no revocation API: the key is escalated to the exchange's security team, which deletes it, and
    # the commander confirms. Coinbase keys are CDP keys: api_key is the key name, the secret its EC
    # private key as the base64 DER inside the PEM (no spaces or line breaks, as an inventory cell needs)
    "kraken": VenueMethods(("manual",)),
    "coinbase": VenueMethods(("manual",)),
}


def methods_for(venue: str) -> VenueMethods | None:
    return SUPPORTED_VENUES.get(venue)


#: Where a user deletes and creates API keys at each exchange: owner notices point there.
API_MANAGEMENT_URLS: dict[str, str] = {
    "binance": "https://www.binance.com/en/my/settings/api-management",
    "bybit": "https://www.bybit.com/app/user/api-management",
    "okx": "https://www.okx.com/account/my-api",
    "kucoin": "https://www.kucoin.com/account/api",
    "gate": "https://www.gate.io/myaccount/api_key_manage",
    "mexc": "https://www.mexc.com/user/openapi",
    "kraken": "https://www.kraken.com/u/security/api",
    "coinbase": "https://www.coinbase.com/settings/api",
}

#: How owner notices and packets name each venue.
DISPLAY_NAMES: dict[str, str] = {
    "binance": "Binance",
    "bybit": "Bybit",
    "okx": "OKX",
    "kucoin": "KuCoin",
    "gate": "Gate",
    "mexc": "MEXC",
    "kraken": "Kraken",
    "coinbase": "Coinbase",
}


def display_name(venue: str) -> str:
    return DISPLAY_NAMES.get(venue, venue)
