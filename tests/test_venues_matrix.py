"""Every venue, one row at a time: each adapter through real ccxt objects against the simulator.

The same questions for every venue: an invalid key is rejected by the probe; the venue's rate-limit
answer is ``RateLimited`` with a hint of when to retry; its ban is ``VenueBanned``; a 5xx or a hang is
``VenueUnavailable``; a master without the right is ``RevokeRefused``; a key that is already deleted
is ``already_gone``; and a tampered signature is rejected with the venue's own error, never taken for
a success. The classification table itself is checked against ccxt's exception hierarchy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import ccxt
import pytest

from activities.venues.base import Credentials, KeyTarget, VenueAdapter
from activities.venues.classify import CLASSIFICATION, classify
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import ADAPTERS
from keyrevoke.errors import (
    KeyRejected,
    Misconfigured,
    RateLimited,
    RevokeRefused,
    VenueBanned,
    VenueUnavailable,
)
from keyrevoke.venues import SUPPORTED_VENUES
from tests import venue_stage
from tests.venue_stage import TamperingFactory, exchanges_for, flip
from venuesim import Scenario, SimKey, SimMaster, VenueSimulator

# ccxt logs requests (with keys) at DEBUG; these tests only look at warnings.
pytestmark = pytest.mark.usefixtures("quiet_ccxt")


@dataclass(frozen=True)
class Venue:
    """One venue's row: a key, the key's revoke method, the master, and the venue's own words."""

    key: SimKey
    other: SimKey  # a second key of the same venue, for tests that need two
    method: str
    master: SimMaster
    bad_signature: str  # what the probe reports for a tampered signature: the venue's own error


def _venue(name: str, method: str, account: str, passphrase: str, bad_signature: str) -> Venue:
    def key(n: int) -> SimKey:
        return SimKey(
            f"{name}-{n}",
            name,
            f"{name}ApiKey{n}x",
            f"{name}Secret{n}x",
            passphrase=passphrase and f"{passphrase}{n}",
            account=account,
            permissions=("read", "trade", "transfer"),
        )

    master = SimMaster(name, f"{name}MasterKey", f"{name}MasterSecret", passphrase=passphrase and "MasterPass9")
    return Venue(key(1), key(2), method, master, bad_signature)


# Each venue's documented answer to a bad signature, written out here on purpose rather than taken from
# the adapters: an independent expectation of what the venue says, so a wrong adapter cannot agree with itself.
VENUES = {
    "binance": _venue("binance", "broker", "5001", "", "code -1022"),
    "bybit": _venue("bybit", "sub", "7001", "", "retCode 10004"),
    "okx": _venue("okx", "sub", "okxsub01", "OkxPass7", "code 50113"),
    "kucoin": _venue("kucoin", "sub", "kucoinsub01", "KcPass77", "code 400005"),
    "gate": _venue("gate", "sub", "9001", "", "label INVALID_SIGNATURE"),
    "mexc": _venue("mexc", "sub", "mexcsub0001", "", "code 700002"),
}
NAMES = list(VENUES)
#: venues with no revocation API, whose keys are escalated: tests/test_manual_venues.py covers them
MANUAL_VENUES = {"kraken", "coinbase"}


def creds(who: SimKey | SimMaster, secret: str | None = None) -> Credentials:
    return Credentials(who.api_key, who.secret if secret is None else secret, who.passphrase)


def target(key: SimKey, method: str, secret: str | None = None) -> KeyTarget:
    return KeyTarget(key.key_id, key.account_id, key.account_name, method, f"fp-{key.key_id}", creds(key, secret))


@dataclass
class Stage:
    sim: VenueSimulator
    adapter: VenueAdapter
    row: Venue

    def key(self, secret: str | None = None) -> KeyTarget:
        return target(self.row.key, self.row.method, secret)

    def live(self, key: SimKey | None = None) -> bool:
        return self.sim.is_live(self.row.key.venue, (key or self.row.key).api_key)


#: where each venue's ccxt request carries its signature: a header, or the ``signature`` parameter
SIGNATURE_HEADERS = ("X-BAPI-SIGN", "OK-ACCESS-SIGN", "KC-API-SIGN", "SIGN")


class Tampering(TamperingFactory):
    """Objects that sign every request as ccxt does, then change one character of the signature."""

    def tamper(self, request: dict[str, Any]) -> None:
        headers = request.get("headers") or {}
        for name in SIGNATURE_HEADERS:
            if name in headers:
                headers[name] = flip(headers[name])
        url, marker = request["url"], "signature="
        if marker in url:
            at = url.index(marker) + len(marker)
            request["url"] = url[:at] + flip(url[at:])


@contextlib.asynccontextmanager
async def stage(
    name: str,
    faults: dict[str, Any] | None = None,
    *,
    master_secret: str | None = None,
    timeout_seconds: float = 2.0,
    tamper: bool = False,
) -> AsyncIterator[Stage]:
    row = VENUES[name]
    scenario = Scenario.from_dict({"seed": 5, "venues": {name: faults or {}}})
    sim = VenueSimulator([row.key, row.other], [row.master], scenario)
    factory = Tampering if tamper else ExchangeFactory
    async with exchanges_for(sim, factory, timeout_seconds=timeout_seconds) as exchanges:
        yield Stage(sim, ADAPTERS[name](exchanges, creds(row.master, master_secret)), row)


def assert_clean(error: BaseException, row: Venue) -> None:
    """A raised venue error carries no ccxt exception (its message holds the URL) and no secret."""
    secrets = [text for who in (row.key, row.other, row.master) for text in (who.api_key, who.secret, who.passphrase)]
    venue_stage.assert_clean(error, secrets)


# --- the registry and the inventory agree -------------------------------------------------------


def test_every_supported_venue_has_an_adapter_and_a_simulator():
    assert set(SUPPORTED_VENUES) == set(ADAPTERS) == set(VENUES) | MANUAL_VENUES
    assert set(ADAPTERS) <= set(VenueSimulator.protocols)
    for name, methods in SUPPORTED_VENUES.items():
        adapter = ADAPTERS[name]
        assert adapter.venue == name
        assert set(methods.methods) <= set(adapter.revoke_methods), name
        assert methods.default == adapter.revoke_methods[0]
    assert {name for name, m in SUPPORTED_VENUES.items() if m.needs_passphrase} == {"okx", "kucoin"}
    # a venue revokes through its API, or (and only then) every key of it is escalated to the exchange
    assert {name for name, m in SUPPORTED_VENUES.items() if "manual" in m.methods} == MANUAL_VENUES
    for name in MANUAL_VENUES:
        assert SUPPORTED_VENUES[name].methods == ("manual",)
        assert not ADAPTERS[name].master_methods


# --- the life of a key ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_probe_revoke_probe(name):
    async with stage(name) as s:
        before = await s.adapter.probe(s.key())
        assert before.accepted, before.detail
        assert "read" in before.permissions
        revoked = await s.adapter.revoke(s.key())
        assert not revoked.already_gone
        assert not s.live()
        assert s.live(s.row.other)  # only that key
        after = await s.adapter.probe(s.key())
        assert not after.accepted
        assert after.detail.startswith("rejected: AuthenticationError") or after.detail.startswith("rejected: Bad")
        again = await s.adapter.revoke(s.key())
        assert again.already_gone  # deleting a deleted key is success
        assert s.sim.stats.deletes[name] == 1


@pytest.mark.parametrize("name", NAMES)
async def test_an_invalid_key_is_rejected_by_the_probe(name):
    async with stage(name) as s:
        unknown = replace(s.row.key, api_key=f"{name}NoSuchKey0")
        answer = await s.adapter.probe(target(unknown, s.row.method))
        assert not answer.accepted
        assert answer.detail.startswith("rejected: ")


@pytest.mark.parametrize("name", NAMES)
async def test_an_ip_blocked_key_looks_invalid(name):
    async with stage(name, {"ip_blocked_keys": [VENUES[name].key.key_id]}) as s:
        answer = await s.adapter.probe(s.key())
        assert not answer.accepted
        assert s.live()  # it exists, only not from here


@pytest.mark.parametrize("name", NAMES)
async def test_a_tampered_signature_is_the_venues_own_error_and_never_a_success(name):
    async with stage(name, tamper=True) as s:
        answer = await s.adapter.probe(s.key())
        assert not answer.accepted
        assert answer.detail.endswith(f"({s.row.bad_signature})"), answer.detail
        with pytest.raises(RevokeRefused) as refused:  # the master's tampered delete
            await s.adapter.revoke(s.key())
        assert refused.value.args[0].endswith(f"({s.row.bad_signature})"), refused.value
        assert_clean(refused.value, s.row)
        assert s.live()
        assert s.sim.stats.deletes[name] == 0
    async with stage(name, master_secret="not-the-master-secret") as s:
        assert not (await s.adapter.probe(s.key(secret="not-the-real-secret"))).accepted
        with pytest.raises(RevokeRefused) as refused:
            await s.adapter.revoke(s.key())
        assert_clean(refused.value, s.row)
        assert s.live()
        assert s.sim.stats.deletes[name] == 0


# --- revoke outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_an_already_deleted_key_is_already_gone(name):
    async with stage(name, {"already_deleted_keys": [VENUES[name].key.key_id]}) as s:
        assert (await s.adapter.revoke(s.key())).already_gone
        assert not (await s.adapter.probe(s.key())).accepted


@pytest.mark.parametrize("name", NAMES)
async def test_a_master_lacking_permission_is_refused(name):
    async with stage(name, {"master_lacks_permission": True}) as s:
        with pytest.raises(RevokeRefused) as refused:
            await s.adapter.revoke(s.key())
        assert_clean(refused.value, s.row)
        assert s.live()


@pytest.mark.parametrize("name", NAMES)
async def test_a_lost_delete_answer_then_a_retry_is_already_gone(name):
    async with stage(name, {"lost_delete_rate": 1.0}) as s:
        try:
            first = await s.adapter.revoke(s.key())
        except VenueUnavailable as lost:
            assert_clean(lost, s.row)
        else:
            # aiohttp repeats an idempotent DELETE once when a reused connection drops unanswered
            assert first.already_gone
        assert not s.live()  # the venue did delete it
        assert (await s.adapter.revoke(s.key())).already_gone


@pytest.mark.parametrize("name", NAMES)
async def test_a_deleted_key_may_work_for_a_while(name):
    async with stage(name, {"revoke_grace_seconds": 60}) as s:
        await s.adapter.revoke(s.key())
        assert s.live()
        assert (await s.adapter.probe(s.key())).accepted  # not confirmed yet: verification goes on
        assert (await s.adapter.revoke(s.key())).already_gone


# --- pacing and outages ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_the_rate_limit_is_rate_limited_with_a_retry_hint(name):
    async with stage(name, {"requests_per_second": 1}) as s:
        assert (await s.adapter.probe(s.key())).accepted
        with pytest.raises(RateLimited) as limited:
            await s.adapter.probe(s.key())
        assert type(limited.value) is RateLimited  # not the VenueBanned subclass
        assert limited.value.retry_after is not None
        assert 0 <= limited.value.retry_after <= 2
        assert_clean(limited.value, s.row)
        with pytest.raises(RateLimited):
            await s.adapter.revoke(s.key())
        assert s.live()
        assert s.sim.stats.rate_limited[name] == 2


@pytest.mark.parametrize("name", NAMES)
async def test_a_ban_is_venue_banned(name):
    async with stage(name, {"requests_per_second": 1, "ban_after_429s": 1, "ban_seconds": 90}) as s:
        assert (await s.adapter.probe(s.key())).accepted
        with pytest.raises(RateLimited):
            await s.adapter.probe(s.key())
        with pytest.raises(VenueBanned) as banned:
            await s.adapter.revoke(s.key())
        assert_clean(banned.value, s.row)
        assert s.live()
        assert s.sim.stats.banned[name] == 1


@pytest.mark.parametrize("name", NAMES)
async def test_5xx_and_hangs_are_venue_unavailable(name):
    async with stage(name, {"error_rate": 1.0}) as s:
        with pytest.raises(VenueUnavailable) as failed:
            await s.adapter.probe(s.key())
        assert type(failed.value) is VenueUnavailable
        assert_clean(failed.value, s.row)
        with pytest.raises(VenueUnavailable):
            await s.adapter.revoke(s.key())
        assert s.live()
    async with stage(name, {"timeout_rate": 1.0, "hang_seconds": 5}, timeout_seconds=0.3) as s:
        with pytest.raises(VenueUnavailable) as timed_out:
            await s.adapter.revoke(s.key())
        assert str(timed_out.value) == f"{name}: RequestTimeout"
        assert s.live()


@pytest.mark.parametrize("name", NAMES)
async def test_a_clock_out_of_step_is_retried_not_taken_for_a_bad_key(name):
    async with stage(name) as s:
        create = s.adapter.exchanges.create

        def skewed(venue: str, credentials: Credentials | None) -> Any:
            exchange = create(venue, credentials)
            exchange.options["timeDifference"] = 70_000  # ccxt's nonce() is now - timeDifference
            return exchange

        s.adapter.exchanges.create = skewed  # type: ignore[method-assign]
        with pytest.raises(VenueUnavailable) as failed:
            await s.adapter.probe(s.key())
        assert_clean(failed.value, s.row)


@pytest.mark.parametrize("name", NAMES)
async def test_missing_master_or_unknown_method_is_refused_before_any_call(name):
    async with stage(name) as s:
        with pytest.raises(Misconfigured, match="no revoke method"):
            await s.adapter.revoke(target(s.row.key, "no-such-method"))
        s.adapter.master = None
        with pytest.raises(Misconfigured, match="no master credentials"):
            await s.adapter.revoke(s.key())
        assert s.sim.stats.requests[name] == 0


# --- the classification table ---------------------------------------------------------------------


def test_the_classification_table_says_what_each_ccxt_class_means():
    outcomes = {ccxt_class: keyrevoke_class for ccxt_class, keyrevoke_class in CLASSIFICATION}
    # retried
    for retried in (ccxt.RateLimitExceeded, ccxt.RequestTimeout, ccxt.ExchangeNotAvailable, ccxt.NetworkError):
        assert outcomes[retried].retryable, retried
    assert classify("x", ccxt.InvalidNonce("clock")).retryable
    assert classify("x", ccxt.OnMaintenance("later")).retryable
    # a ban waits for the venue, it is not retried in place
    assert issubclass(outcomes[ccxt.DDoSProtection], VenueBanned)
    # confirms a revoke when probing: the key is rejected
    assert outcomes[ccxt.AuthenticationError] is KeyRejected
    # permanent: escalated to a human
    for permanent in (ccxt.PermissionDenied, ccxt.AccountSuspended, ccxt.BadRequest, ccxt.ExchangeError):
        assert not outcomes[permanent].retryable, permanent
        assert issubclass(outcomes[permanent], RevokeRefused), permanent
    # a subclass is never shadowed by its base: the first matching row wins
    for i, (earlier, _) in enumerate(CLASSIFICATION):
        for later, _ in CLASSIFICATION[i + 1 :]:
            assert not issubclass(later, earlier) or later is earlier, (earlier, later)
    limited = classify("x", ccxt.RateLimitExceeded("slow"), {"Retry-After": "7"})
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7
    assert str(classify("x", ccxt.RequestTimeout("https://host/?apiKey=leak"))) == "x: RequestTimeout"
