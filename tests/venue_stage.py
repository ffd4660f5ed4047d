"""Shared plumbing for the adapter tests that drive real ccxt objects against the venue simulator
(tests/test_venues_matrix.py for the venues with a revocation API, tests/test_manual_venues.py for the rest)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from activities.venues.base import Credentials
from activities.venues.exchanges import ExchangeFactory
from keyrevoke.errors import VenueError
from venuesim import VenueSimulator


def flip(signature: str) -> str:
    """The signature with its first character changed (hex and Base64 alike)."""
    return ("b" if signature[0] == "a" else "a") + signature[1:]


class TamperingFactory(ExchangeFactory):
    """Objects that sign every request as ccxt does, then hand the signed request to ``tamper``."""

    def tamper(self, request: dict[str, Any]) -> None:
        raise NotImplementedError

    def create(self, venue: str, credentials: Credentials | None) -> Any:
        exchange = super().create(venue, credentials)
        sign = exchange.sign

        def tampered(*args: Any, **kwargs: Any) -> Any:
            request = sign(*args, **kwargs)
            self.tamper(request)
            return request

        exchange.sign = tampered
        return exchange


@contextlib.asynccontextmanager
async def exchanges_for(
    sim: VenueSimulator, factory: type[ExchangeFactory] = ExchangeFactory, *, timeout_seconds: float = 2.0
) -> AsyncIterator[ExchangeFactory]:
    """Start ``sim`` and a ``factory`` of ccxt objects pointed at it; close both when the block ends."""
    await sim.start()
    exchanges = factory(sim.venue_urls, timeout_seconds=timeout_seconds)
    try:
        yield exchanges
    finally:
        await exchanges.close()
        await sim.stop()


def assert_clean(error: BaseException, secrets: Iterable[str]) -> None:
    """A raised venue error carries no ccxt exception (its message holds the URL) and none of ``secrets``."""
    assert isinstance(error, VenueError)
    assert error.__cause__ is None
    text = f"{error} {error!r}"
    for secret in secrets:
        assert not secret or secret not in text
