"""Making ccxt exchange objects cheaply, pointed at the right base URL.

A fresh ccxt async object per key costs an SSL context and an aiohttp session of its own; here every
object shares one of each, so making one per key is cheap, and nothing has to be closed per key.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import ccxt.async_support as ccxt_async

from activities.venues.base import Credentials
from keyrevoke.errors import UnsupportedVenue


def _rebase(url: Any, base: str) -> Any:
    """Replace scheme and host of every URL in ccxt's ``urls['api']`` tree by ``base`` (path kept)."""
    if isinstance(url, str):
        parts = urlsplit(url.replace("{hostname}", "placeholder.invalid"))
        return base.rstrip("/") + parts.path
    if isinstance(url, dict):
        return {name: _rebase(value, base) for name, value in url.items()}
    return url


class ExchangeFactory:
    """Builds ccxt async exchange objects that share one HTTP session and one SSL context."""

    def __init__(self, venue_urls: Mapping[str, str], timeout_seconds: float = 10.0) -> None:
        self._venue_urls = dict(venue_urls)
        self._timeout_ms = int(timeout_seconds * 1000)
        self._ssl_context = ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None
        self._masters: dict[str, Any] = {}

    def _shared_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl_context, limit=256)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def create(self, venue: str, credentials: Credentials | None) -> Any:
        """A ccxt async exchange object for ``venue`` signing with ``credentials``.

        ccxt's own throttle is off: pacing is keyrevoke's, shared by every key of a venue.
        """
        exchange_class = getattr(ccxt_async, venue, None)
        if exchange_class is None:
            raise UnsupportedVenue(venue, "ccxt has no exchange with this id")
        config: dict[str, Any] = {
            "enableRateLimit": False,
            "timeout": self._timeout_ms,
            "session": self._shared_session(),
            "ssl_context": self._ssl_context,
        }
        if credentials is not None:
            config.update(credentials.as_ccxt_config())
        exchange = exchange_class(config)
        base = self._venue_urls.get(venue)
        if base:
            exchange.urls["api"] = _rebase(exchange.urls["api"], base)
        return exchange

    def master(self, venue: str, credentials: Credentials) -> Any:
        """The one exchange object of the platform's master key for ``venue`` (made once, reused)."""
        exchange = self._masters.get(venue)
        if exchange is None:
            exchange = self._masters[venue] = self.create(venue, credentials)
        return exchange

    async def close(self) -> None:
        """Close the shared session, after detaching the master objects from it."""
        for exchange in self._masters.values():
            exchange.timeout_on_exit = 0  # the session is ours: ccxt's pause before closing is not needed
            await exchange.close()
        self._masters.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
