"""No API key, secret or passphrase leaves a venue adapter: not in a log line, an error or a detail.

Every venue's probe and revoke run against the simulator with the root logger at DEBUG, where ccxt
writes whole requests (headers with the key, URLs with the signature, answers that repeat the key).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import ccxt
import pytest

from activities.venues.base import Credentials, KeyTarget, Rejected, VenueAdapter
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import ADAPTERS
from keyrevoke.errors import VenueError
from venuesim import Scenario, SimKey, SimMaster, VenueSimulator

#: venue -> (revoke method, sub-account, whether the venue signs with a passphrase)
VENUES = {
    "binance": ("broker", "5001", False),
    "bybit": ("sub", "7001", False),
    "okx": ("sub", "okxsub01", True),
    "kucoin": ("sub", "kucoinsub01", True),
    "gate": ("sub", "9001", False),
    "mexc": ("sub", "mexcsub0001", False),
}


def _key(venue: str, n: int) -> SimKey:
    _, account, passphrase = VENUES[venue]
    return SimKey(
        f"{venue}-{n}",
        venue,
        f"{venue}LeakKey{n}q",
        f"{venue}LeakSecret{n}q",
        passphrase=f"LeakPass{n}q" if passphrase else "",
        account=account,
    )


KEYS = {venue: (_key(venue, 1), _key(venue, 2)) for venue in VENUES}
MASTERS = {
    venue: SimMaster(venue, f"{venue}LeakMaster", f"{venue}LeakMasterSecret", passphrase="LeakMasterPass" if p else "")
    for venue, (_, _, p) in VENUES.items()
}
SECRETS = [
    value
    for venue in VENUES
    for who in (*KEYS[venue], MASTERS[venue])
    for value in (who.api_key, who.secret, who.passphrase)
    if value
]


def creds(who: SimKey | SimMaster) -> Credentials:
    return Credentials(who.api_key, who.secret, who.passphrase)


def target(key: SimKey) -> KeyTarget:
    return KeyTarget(key.key_id, key.account_id, key.account_name, VENUES[key.venue][0], f"fp-{key.key_id}", creds(key))


def assert_secret_free(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"secrets leaked: {leaked}"


@contextlib.asynccontextmanager
async def venues() -> AsyncIterator[tuple[VenueSimulator, dict[str, VenueAdapter]]]:
    keys = [key for pair in KEYS.values() for key in pair]
    sim = VenueSimulator(keys, tuple(MASTERS.values()), Scenario.from_dict({"seed": 1, "venues": {}}))
    await sim.start()
    factory = ExchangeFactory(sim.venue_urls, timeout_seconds=2.0)
    try:
        yield sim, {venue: ADAPTERS[venue](factory, creds(MASTERS[venue])) for venue in VENUES}
    finally:
        await factory.close()
        await sim.stop()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged at DEBUG and above, ccxt's loggers included."""
    ccxt_logger = logging.getLogger("ccxt")
    level = ccxt_logger.level
    ccxt_logger.setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)
    yield caplog
    ccxt_logger.setLevel(level)


@pytest.mark.parametrize("venue", list(VENUES))
async def test_nothing_secret_is_logged_even_at_debug(venue: str, debug_logs: pytest.LogCaptureFixture) -> None:
    key, other = KEYS[venue]
    async with venues() as (_, adapters):
        adapter = adapters[venue]
        texts: list[str] = []
        accepted = await adapter.probe(target(key))
        assert accepted.accepted
        texts.append(accepted.detail)
        texts.append((await adapter.revoke(target(key))).detail)
        rejected = await adapter.probe(target(key))  # the key is gone now
        assert not rejected.accepted
        texts.append(rejected.detail)
        texts.append((await adapter.revoke(target(key))).detail)  # already gone
        wrong = KeyTarget(
            other.key_id,
            other.account_id,
            other.account_name,
            VENUES[venue][0],
            "fp",
            Credentials(other.api_key, "x", "y"),
        )
        with contextlib.suppress(VenueError):
            texts.append((await adapter.probe(wrong)).detail)
    texts += [record.getMessage() for record in debug_logs.records]
    assert logging.getLogger("ccxt.base.exchange").isEnabledFor(logging.DEBUG), "ccxt's own logger would log here"
    for text in texts:
        assert_secret_free(text)


async def test_a_rejection_keeps_ccxt_s_message_out_of_its_repr() -> None:
    """ccxt's messages echo the request URL, signature and all: ``Rejected`` shows only its detail."""
    url = "https://api.binance.com/sapi/v1/account/apiRestrictions?timestamp=1&signature=abc"
    error = ccxt.AuthenticationError(f"binance GET {url} 401 binanceLeakKey1q")
    rejected = Rejected(error, "rejected: AuthenticationError (code -2015)")
    assert "signature" not in repr(rejected)
    assert_secret_free(repr(rejected))
    assert_secret_free(str(rejected))


@pytest.mark.parametrize("venue", list(VENUES))
async def test_errors_from_a_broken_venue_carry_no_secret(venue: str) -> None:
    """A venue that answers 503 to everything: the raised errors name the class, never the request."""
    key, _ = KEYS[venue]
    keys = [k for pair in KEYS.values() for k in pair]
    scenario: dict[str, Any] = {venue: {"error_rate": 1.0}}
    sim = VenueSimulator(keys, tuple(MASTERS.values()), Scenario.from_dict({"seed": 1, "venues": scenario}))
    await sim.start()
    factory = ExchangeFactory(sim.venue_urls, timeout_seconds=2.0)
    adapter = ADAPTERS[venue](factory, creds(MASTERS[venue]))
    try:
        for attempt in (adapter.probe, adapter.revoke):
            with pytest.raises(VenueError) as raised:
                await attempt(target(key))
            assert raised.value.__cause__ is None
            assert_secret_free(str(raised.value))
            assert_secret_free(repr(raised.value))
    finally:
        await factory.close()
        await sim.stop()
