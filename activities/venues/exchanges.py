"""Making ccxt exchange objects cheaply, pointed at the right base URL.

A fresh ccxt async object per key costs an SSL context and an aiohttp session of its own; here every
object shares one of each, so nothing has to be closed per key.

Building the object is costly even so: ccxt's constructor deep-merges the venue's whole
``describe()`` tree, several milliseconds of CPU, and one new object per call made that more than half
of a worker's CPU. So the objects that sign as one key are pooled per venue and reused: ``create``
lends an idle one with the key's credentials set, and ``release`` puts every attribute back as it was
when the object was built, before it waits for the next key. The secret thus lives on an object no
longer than one call, as it did with an object per call, and nothing one key's call left on the object
(ccxt's last answer, the answer log's hook, a wrapped ``sign``, an ``options`` entry such as Binance's
``hasAlreadyAuthenticatedSuccessfully``, which changes how ccxt reads the next key's -2015) reaches
the next key's call. An object serves one call at a time, since ccxt keeps per-call state on it.
"""

from __future__ import annotations

import logging
import ssl
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import ccxt.async_support as ccxt_async

from activities.venues.base import Credentials
from keyrevoke.errors import Misconfigured, UnsupportedVenue

#: ccxt's credential attributes: the only ones ``create`` sets from a key (``Credentials.as_ccxt_config``)
CREDENTIAL_FIELDS = frozenset(ccxt_async.Exchange.requiredCredentials)

#: the logger of every object made here. ccxt logs each request and answer at DEBUG: the key and
#: passphrase in the headers, the signature (and KuCoin's sub-key passphrase) in the URL, answers that
#: repeat the key. Held at WARNING, with a filter that drops anything below it, whatever the process's
#: logging setup or the level someone later gives this logger; ccxt's warnings still get through.
CCXT_LOG = logging.getLogger(__name__ + ".ccxt")
CCXT_LOG.setLevel(logging.WARNING)
CCXT_LOG.addFilter(lambda record: record.levelno >= logging.WARNING)

#: idle objects kept per venue: about as many calls as a worker runs at once against one venue; an
#: object released when this many are idle is closed, so a burst does not hold its objects for ever
IDLE_PER_VENUE = 64


def _rebase(url: Any, base: str) -> Any:
    """Replace scheme and host of every URL in ccxt's ``urls['api']`` tree by ``base`` (path kept)."""
    if isinstance(url, str):
        parts = urlsplit(url.replace("{hostname}", "placeholder.invalid"))
        return base.rstrip("/") + parts.path
    if isinstance(url, dict):
        return {name: _rebase(value, base) for name, value in url.items()}
    return url


@dataclass(frozen=True)
class _Built:
    """An object as it was built, before any key: its venue, its attributes and its ``options`` entries.

    Shallow copies are enough: what the calls made here change, ccxt replaces rather than changes in
    place (``last_response_headers``, ``markets``), except the ``options`` dict, whose entries are
    copied too (``lastNonce``, ``hasAlreadyAuthenticatedSuccessfully``, ``timeDifference``).
    """

    venue: str
    attributes: dict[str, Any]
    options: dict[str, Any]

    def restore(self, exchange: Any) -> None:
        state = vars(exchange)
        state.clear()
        state.update(self.attributes)
        options = exchange.options
        options.clear()
        options.update(self.options)


class ExchangeFactory:
    """Builds ccxt async exchange objects that share one HTTP session and one SSL context, and pools them.

    ``built`` counts the objects built per venue (reuse keeps it near the number of calls at once).
    """

    def __init__(
        self,
        venue_urls: Mapping[str, str],
        timeout_seconds: float = 10.0,
        idle_per_venue: int = IDLE_PER_VENUE,
        allow_real_exchanges: bool = False,
    ) -> None:
        self._venue_urls = dict(venue_urls)
        self._allow_real = allow_real_exchanges
        self._timeout_ms = int(timeout_seconds * 1000)
        self._idle_per_venue = idle_per_venue
        self._ssl_context = ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None
        self._masters: dict[str, Any] = {}
        self._idle: dict[str, list[Any]] = {}
        self._as_built: weakref.WeakKeyDictionary[Any, _Built] = weakref.WeakKeyDictionary()
        self._lent: weakref.WeakSet[Any] = weakref.WeakSet()
        self.built: Counter[str] = Counter()

    def _shared_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl_context, limit=256)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def unreachable(self, venue: str) -> Misconfigured | None:
        """Why ``venue`` may not be called (no URL, and real exchanges not allowed); None if it may."""
        if self._venue_urls.get(venue) or self._allow_real:
            return None
        return Misconfigured(
            venue,
            "no venue URL in KEYREVOKE_VENUE_URLS, and real exchanges are not allowed "
            "(set KEYREVOKE_ALLOW_REAL_EXCHANGES=true to call the real exchange)",
        )

    def _build(self, venue: str) -> Any:
        """A new object for ``venue``, with no key; ccxt's own throttle is off (pacing is keyrevoke's).

        A venue with no URL is refused unless real exchanges are allowed: nothing is sent to it.
        """
        refused = self.unreachable(venue)
        if refused is not None:
            raise refused
        exchange_class = getattr(ccxt_async, venue, None)
        if exchange_class is None:
            raise UnsupportedVenue(venue, "ccxt has no exchange with this id")
        exchange = exchange_class(
            {
                "enableRateLimit": False,
                "timeout": self._timeout_ms,
                "session": self._shared_session(),
                "ssl_context": self._ssl_context,
            }
        )
        exchange.logger = CCXT_LOG  # never ccxt's own: see CCXT_LOG
        base = self._venue_urls.get(venue)
        if base:
            exchange.urls["api"] = _rebase(exchange.urls["api"], base)
        self._as_built[exchange] = _Built(venue, dict(vars(exchange)), dict(exchange.options))
        self.built[venue] += 1
        return exchange

    def create(self, venue: str, credentials: Credentials | None) -> Any:
        """A ccxt async object for ``venue`` signing with ``credentials``, lent until ``release``.

        An idle object of the venue if there is one, else a new one; no other call gets it meanwhile.
        """
        config = credentials.as_ccxt_config() if credentials is not None else {}
        unknown = set(config) - CREDENTIAL_FIELDS
        if unknown:  # anything else would be set on an object that other keys go on to use
            raise ValueError(f"not ccxt credential fields: {sorted(unknown)}")
        idle = self._idle.get(venue)
        exchange = idle.pop() if idle else self._build(venue)
        exchange.session = self._shared_session()  # the session may have been closed and made anew since
        for name, value in config.items():
            setattr(exchange, name, value)
        self._lent.add(exchange)
        return exchange

    async def release(self, exchange: Any, *, reusable: bool = True) -> None:
        """Take back an object from ``create``: clear its key and per-call state, then keep or close it.

        Every attribute goes back to what the object had when built, whatever the call did. The object
        is kept for the next key unless ``reusable`` is False (its call was cut off mid-request), the
        venue has enough idle objects, or the factory was closed meanwhile: it is closed then. Releasing
        an object that is not lent (a master, or one released already) does nothing.
        """
        if exchange not in self._lent:
            return
        self._lent.discard(exchange)
        built = self._as_built[exchange]
        current = self._session is not None and not self._session.closed and exchange.session is self._session
        built.restore(exchange)
        idle = self._idle.setdefault(built.venue, [])
        if reusable and current and len(idle) < self._idle_per_venue:
            idle.append(exchange)
            return
        await _close(exchange)

    def idle(self, venue: str) -> tuple[Any, ...]:
        """The idle objects of ``venue``, waiting for a key."""
        return tuple(self._idle.get(venue, ()))

    def master(self, venue: str, credentials: Credentials) -> Any:
        """The one exchange object of the platform's master key for ``venue`` (made once, reused)."""
        exchange = self._masters.get(venue)
        if exchange is None:
            exchange = self._masters[venue] = self.create(venue, credentials)
            self._lent.discard(exchange)  # kept for good: never released into the idle pool
        return exchange

    async def close(self) -> None:
        """Close the shared session, after detaching the master and idle objects from it.

        An object still lent is closed when it is released.
        """
        idle = [exchange for objects in self._idle.values() for exchange in objects]
        self._idle.clear()
        masters = list(self._masters.values())
        self._masters.clear()
        for exchange in masters + idle:
            await _close(exchange)
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _close(exchange: Any) -> None:
    """Detach an object from the shared session (ccxt warns about objects left unclosed otherwise).

    The session is not ccxt's own, so ``close`` leaves it open; its exit pause is not needed here.
    """
    exchange.timeout_on_exit = 0
    await exchange.close()
