"""The Binance and Bybit adapters, through real ccxt objects, against the venue simulator.

Every test starts its own simulator on a free loopback port and points ExchangeFactory at it, so
ccxt signs, sends and maps errors exactly as it would against the venues.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ccxt
import pytest

from activities.venues.base import Credentials, KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter
from activities.venues.binance import BinanceAdapter
from activities.venues.bybit import BybitAdapter
from activities.venues.classify import classify
from activities.venues.exchanges import ExchangeFactory
from keyrevoke.errors import (
    KeyRejected,
    Misconfigured,
    RateLimited,
    RevokeRefused,
    VenueBanned,
    VenueError,
    VenueUnavailable,
)
from venuesim import Scenario, SimKey, SimMaster, VenueSimulator

BIN_A = SimKey("bin-a", "binance", "binApiKeyA1", "binSecretA1", account="5001")
BIN_B = SimKey("bin-b", "binance", "binApiKeyB2", "binSecretB2", account="5002", permissions=("read",))
BIN_C = SimKey("bin-c", "binance", "binApiKeyC3", "binSecretC3", account="5003")
BIN_W = SimKey(
    "bin-w", "binance", "binApiKeyW4", "binSecretW4", account="5004", permissions=("read", "trade", "withdraw")
)
# main accounts' keys (a user's own), which delete themselves with delete-api
BY_SELF = SimKey(
    "by-self",
    "bybit",
    "bybApiKeyS1",
    "bybSecretS1",
    account="7001",
    permissions=("read", "transfer"),
    main_account=True,
)
BY_READ = SimKey(
    "by-read", "bybit", "bybApiKeyR3", "bybSecretR3", account="7003", permissions=("read",), main_account=True
)
# sub-accounts' keys under the platform's master
BY_SUB = SimKey("by-sub", "bybit", "bybApiKeyU2", "bybSecretU2", account="7002")
BY_SUB_TRANSFER = SimKey(
    "by-sub-t", "bybit", "bybApiKeyT4", "bybSecretT4", account="7004", permissions=("read", "trade", "transfer")
)
BY_SUB_WITHDRAW = SimKey(
    "by-sub-w", "bybit", "bybApiKeyW5", "bybSecretW5", account="7005", permissions=("read", "trade", "withdraw")
)
KEYS = (BIN_A, BIN_B, BIN_C, BIN_W, BY_SELF, BY_SUB, BY_READ, BY_SUB_TRANSFER, BY_SUB_WITHDRAW)
BIN_MASTER = SimMaster("binance", "binBrokerMaster", "binBrokerSecret", account="1")
BY_MASTER = SimMaster("bybit", "bybMasterKey", "bybMasterSecret", account="1000")
ALL_SECRETS = [v for k in KEYS for v in (k.api_key, k.secret)] + [
    v for m in (BIN_MASTER, BY_MASTER) for v in (m.api_key, m.secret)
]


def creds(who: SimKey | SimMaster, secret: str | None = None) -> Credentials:
    return Credentials(who.api_key, who.secret if secret is None else secret)


def target(key: SimKey, method: str = "", secret: str | None = None) -> KeyTarget:
    return KeyTarget(key.key_id, key.account_id, key.account_name, method, f"fp-{key.key_id}", creds(key, secret))


class SkewedFactory(ExchangeFactory):
    """Objects whose clock runs ``skew_ms`` behind: their timestamps fall outside the recvWindow."""

    def __init__(self, venue_urls: dict[str, str], skew_ms: int) -> None:
        super().__init__(venue_urls, timeout_seconds=2.0)
        self.skew_ms = skew_ms

    def create(self, venue: str, credentials: Credentials | None) -> Any:
        exchange = super().create(venue, credentials)
        exchange.options["timeDifference"] = self.skew_ms  # ccxt's nonce() is now - timeDifference
        return exchange


@dataclass
class Stage:
    sim: VenueSimulator
    binance: BinanceAdapter
    bybit: BybitAdapter

    def adapter(self, venue: str) -> VenueAdapter:
        return self.binance if venue == "binance" else self.bybit


@contextlib.asynccontextmanager
async def stage(
    scenario: dict[str, Any] | None = None,
    *,
    timeout_seconds: float = 2.0,
    skew_ms: int = 0,
    masters: bool = True,
) -> AsyncIterator[Stage]:
    sim = VenueSimulator(KEYS, (BIN_MASTER, BY_MASTER), Scenario.from_dict({"seed": 1, "venues": scenario or {}}))
    await sim.start()
    factory = (
        SkewedFactory(sim.venue_urls, skew_ms)
        if skew_ms
        else ExchangeFactory(sim.venue_urls, timeout_seconds=timeout_seconds)
    )
    try:
        yield Stage(
            sim,
            BinanceAdapter(factory, creds(BIN_MASTER) if masters else None),
            BybitAdapter(factory, creds(BY_MASTER) if masters else None),
        )
    finally:
        await factory.close()
        await sim.stop()


def assert_secret_free(*texts: str) -> None:
    for text in texts:
        for secret in ALL_SECRETS:
            assert secret not in text, "a key or secret leaked into a message"


def assert_clean(error: BaseException) -> None:
    """A raised venue error carries no ccxt exception (whose message holds the URL) and no secret."""
    assert isinstance(error, VenueError)
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert_secret_free(str(error), repr(error))


# --- the life of a key ---------------------------------------------------------------------------


async def test_binance_probe_revoke_probe(caplog):
    async with stage() as s:
        answer = await s.binance.probe(target(BIN_W))
        assert answer.accepted
        assert answer.permissions == ("read", "trade", "withdraw")
        assert "ipRestrict=True" in answer.detail
        revoked = await s.binance.revoke(target(BIN_W, "broker"))
        assert not revoked.already_gone
        assert not s.sim.is_live("binance", BIN_W.api_key)
        after = await s.binance.probe(target(BIN_W))
        assert after == ProbeAnswer(accepted=False, detail="rejected: AuthenticationError (code -2015)")
        assert_secret_free(answer.detail, revoked.detail, after.detail)
        gc.collect()
        # the per-key ccxt objects were released: ccxt has nothing to warn about
        assert not [r for r in caplog.records if "release all resources" in r.getMessage()]


async def test_bybit_self_and_sub_revokes():
    async with stage() as s:
        answer = await s.bybit.probe(target(BY_SELF))
        assert answer.accepted
        assert answer.permissions == ("read", "transfer")
        assert (await s.bybit.probe(target(BY_SUB))).permissions == ("read", "trade")
        assert_secret_free(answer.detail)

        assert not (await s.bybit.revoke(target(BY_SELF, "self"))).already_gone
        assert not (await s.bybit.revoke(target(BY_SUB, "sub"))).already_gone
        for key in (BY_SELF, BY_SUB):
            assert not s.sim.is_live("bybit", key.api_key)
            after = await s.bybit.probe(target(key))
            assert after == ProbeAnswer(accepted=False, detail="rejected: AuthenticationError (retCode 10003)")
        # doing it again is success: the keys are already gone
        assert (await s.bybit.revoke(target(BY_SELF, "self"))).already_gone
        assert (await s.bybit.revoke(target(BY_SUB, "sub"))).already_gone


def bybit_deletes(sim: VenueSimulator) -> dict[str, int]:
    """The delete requests Bybit received, by path."""
    paths: dict[str, int] = sim.stats.snapshot()["paths"].get("bybit", {})
    return {path: count for path, count in paths.items() if "delete" in path}


@pytest.mark.parametrize("probed_first", [True, False], ids=["probed", "not-probed"])
async def test_bybit_sub_account_key_deletes_itself_through_delete_sub_api(probed_first):
    """Bybit's delete-api takes a main account's key only; a sub-account's key with a transfer right
    deletes itself through delete-sub-api, naming no key."""
    async with stage() as s:
        if probed_first:
            assert (await s.bybit.probe(target(BY_SUB_TRANSFER, "self"))).accepted
        revoked = await s.bybit.revoke(target(BY_SUB_TRANSFER, "self"))
        assert revoked == RevokeAnswer(already_gone=False, detail="deleted by the key itself: POST user/delete-sub-api")
        assert not s.sim.is_live("bybit", BY_SUB_TRANSFER.api_key)
        assert bybit_deletes(s.sim) == {"/v5/user/delete-sub-api": 1}
        # the probe's answer served the revoke; without it the key was asked first
        assert s.sim.stats.requests["bybit"] == 2
        # a main account's key still deletes itself with delete-api
        assert (
            await s.bybit.revoke(target(BY_SELF, "self"))
        ).detail == "deleted by the key itself: POST user/delete-api"


@pytest.mark.parametrize("probed_first", [True, False], ids=["probed", "not-probed"])
async def test_bybit_self_for_a_sub_account_key_without_a_transfer_right_is_misconfigured_before_any_delete(
    probed_first,
):
    async with stage() as s:
        if probed_first:
            answer = await s.bybit.probe(target(BY_SUB_WITHDRAW, "self"))
            assert answer.permissions == ("read", "trade", "withdraw")
        with pytest.raises(Misconfigured) as misconfigured:
            await s.bybit.revoke(target(BY_SUB_WITHDRAW, "self"))
        message = str(misconfigured.value)
        assert "sub-account's key" in message
        assert "Account Transfer or Sub Member Transfer" in message
        assert "method sub" in message
        assert_secret_free(message, repr(misconfigured.value))
        assert bybit_deletes(s.sim) == {}  # nothing was asked of Bybit but the key's own information
        assert s.sim.is_live("bybit", BY_SUB_WITHDRAW.api_key)
        # as the inventory's method sub says, the master deletes it
        assert not (await s.bybit.revoke(target(BY_SUB_WITHDRAW, "sub"))).already_gone
        assert not s.sim.is_live("bybit", BY_SUB_WITHDRAW.api_key)


async def test_bybit_http_401_rejects_a_key_as_the_ret_code_does():
    """Bybit answers a key it never issued with HTTP 401 and a body that is not JSON; a deleted key with 10003."""
    never = SimKey("by-never", "bybit", "bybNeverIssued", "bybNeverSecret")
    async with stage() as s:
        answer = await s.bybit.probe(target(never))
        assert answer == ProbeAnswer(accepted=False, detail="rejected: AuthenticationError (HTTP 401)")
        assert s.sim.stats.statuses["bybit"][401] == 1
        gone = await s.bybit.revoke(target(never, "self"))
        assert gone.already_gone
        assert "HTTP 401" in gone.detail
        # both forms, as ccxt raises them, classify as the venue rejecting the key
        errors = []
        for key in (never, BY_SELF):
            if key is BY_SELF:
                await s.bybit.revoke(target(BY_SELF, "self"))
            exchange = s.bybit.exchanges.create("bybit", creds(key))
            try:
                with pytest.raises(ccxt.AuthenticationError) as raised:
                    await exchange.privateGetV5UserQueryApi()
            finally:
                await s.bybit.exchanges.release(exchange)
            errors.append(classify("bybit", raised.value))
        assert [type(error) for error in errors] == [KeyRejected, KeyRejected]
        assert s.sim.stats.statuses["bybit"][401] == 3


async def test_bybit_key_without_wallet_permission_cannot_delete_itself():
    async with stage() as s:
        with pytest.raises(RevokeRefused) as refused:
            await s.bybit.revoke(target(BY_READ, "self"))
        assert "retCode 10005" in str(refused.value)
        assert_clean(refused.value)
        assert s.sim.is_live("bybit", BY_READ.api_key)
        # the master can
        assert not (await s.bybit.revoke(target(BY_READ, "sub"))).already_gone


# --- what must never look like success ------------------------------------------------------------


@pytest.mark.parametrize(("key", "code"), [(BIN_A, "code -1022"), (BY_SELF, "retCode 10004")])
async def test_a_wrong_signature_is_rejected_by_the_venue(key, code):
    async with stage() as s:
        adapter = s.adapter(key.venue)
        answer = await adapter.probe(target(key, secret="not-the-real-secret"))
        assert not answer.accepted
        assert answer.detail == f"rejected: AuthenticationError ({code})"
        assert s.sim.is_live(key.venue, key.api_key)
        assert s.sim.stats.statuses[key.venue][400 if key.venue == "binance" else 200] == 1
    if key.venue == "bybit":
        async with stage() as s:
            # the key exists (Bybit checks it before the signature): refusing, not "already gone"
            with pytest.raises(RevokeRefused):
                await s.bybit.revoke(target(key, "self", secret="not-the-real-secret"))
            assert s.sim.is_live("bybit", key.api_key)


@pytest.mark.parametrize("key", [BIN_A, BY_SELF])
async def test_a_timestamp_outside_the_recv_window_is_rejected(key):
    async with stage(skew_ms=70_000) as s:
        with pytest.raises(VenueUnavailable) as failed:  # ccxt InvalidNonce: retry once the clock is right
            await s.adapter(key.venue).probe(target(key))
        assert_clean(failed.value)
        assert s.sim.is_live(key.venue, key.api_key)


@pytest.mark.parametrize("venue", ["binance", "bybit"])
async def test_an_ip_blocked_key_does_not_pass_a_probe(venue):
    key = BIN_A if venue == "binance" else BY_SELF
    async with stage({venue: {"ip_blocked_keys": [key.key_id]}}) as s:
        answer = await s.adapter(venue).probe(target(key))
        assert not answer.accepted
        expected = "AuthenticationError (code -2015)" if venue == "binance" else "PermissionDenied (retCode 10010)"
        assert answer.detail == f"rejected: {expected}"


# --- revoke outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "method"), [(BIN_A, "broker"), (BY_SELF, "self"), (BY_SUB, "sub")])
async def test_an_already_deleted_key_is_already_gone(key, method):
    async with stage({key.venue: {"already_deleted_keys": [key.key_id]}}) as s:
        answer = await s.adapter(key.venue).revoke(target(key, method))
        assert answer.already_gone
        assert not (await s.adapter(key.venue).probe(target(key))).accepted


@pytest.mark.parametrize(("key", "method"), [(BIN_A, "broker"), (BY_SUB, "sub")])
async def test_a_master_without_permission_is_refused(key, method):
    async with stage({key.venue: {"master_lacks_permission": True}}) as s:
        with pytest.raises(RevokeRefused) as refused:
            await s.adapter(key.venue).revoke(target(key, method))
        assert_clean(refused.value)
        assert s.sim.is_live(key.venue, key.api_key)
    async with stage(masters=False) as s:
        with pytest.raises(Misconfigured, match="no master credentials configured for method"):
            await s.adapter(key.venue).revoke(target(key, method))


@pytest.mark.parametrize(("key", "method"), [(BIN_A, "broker"), (BY_SELF, "self"), (BY_SUB, "sub")])
async def test_a_lost_delete_answer_then_a_retry_is_already_gone(key, method):
    async with stage({key.venue: {"lost_delete_rate": 1.0}}) as s:
        adapter = s.adapter(key.venue)
        try:
            first = await adapter.revoke(target(key, method))
        except VenueUnavailable as lost:
            assert_clean(lost)
        else:
            # aiohttp repeats an idempotent request (DELETE) once when a reused connection drops
            # without an answer; the repeat finds the key gone
            assert key.venue == "binance"
            assert first.already_gone
        assert s.sim.stats.lost_answers[key.venue] == 1
        assert not s.sim.is_live(key.venue, key.api_key)  # the venue did delete it
        assert (await adapter.revoke(target(key, method))).already_gone
        assert not (await adapter.probe(target(key))).accepted


async def test_a_deleted_key_keeps_working_during_the_grace_period():
    async with stage({"binance": {"revoke_grace_seconds": 0.5}}) as s:
        await s.binance.revoke(target(BIN_A, "broker"))
        assert s.sim.is_live("binance", BIN_A.api_key)
        assert (await s.binance.probe(target(BIN_A))).accepted
        # the venue's registry already forgets it: a second delete says so
        assert (await s.binance.revoke(target(BIN_A, "broker"))).already_gone
        await asyncio.sleep(0.6)
        assert not s.sim.is_live("binance", BIN_A.api_key)
        assert not (await s.binance.probe(target(BIN_A))).accepted


# --- pacing and outages ---------------------------------------------------------------------------


async def test_binance_429_is_rate_limited_and_418_is_a_ban():
    async with stage({"binance": {"requests_per_second": 1, "ban_after_429s": 2, "ban_seconds": 90}}) as s:
        assert (await s.binance.probe(target(BIN_A))).accepted
        for _ in range(2):
            with pytest.raises(RateLimited) as limited:
                await s.binance.probe(target(BIN_A))
            assert type(limited.value) is RateLimited  # not the VenueBanned subclass
            assert limited.value.retry_after is not None
            assert limited.value.retry_after >= 1
            assert_clean(limited.value)
        with pytest.raises(VenueBanned) as banned:
            await s.binance.revoke(target(BIN_A, "broker"))
        assert banned.value.retry_after is not None
        assert 80 <= banned.value.retry_after <= 90
        assert_clean(banned.value)
        assert s.sim.is_live("binance", BIN_A.api_key)


async def test_bybit_10006_is_rate_limited_and_403_is_a_ban():
    async with stage({"bybit": {"requests_per_second": 1, "ban_after_429s": 2}}) as s:
        assert (await s.bybit.probe(target(BY_SELF))).accepted
        for _ in range(2):
            with pytest.raises(RateLimited) as limited:
                await s.bybit.probe(target(BY_SELF))
            assert type(limited.value) is RateLimited
            assert limited.value.retry_after is not None
            assert 0 <= limited.value.retry_after <= 1
        with pytest.raises(VenueBanned) as banned:
            await s.bybit.revoke(target(BY_SUB, "sub"))
        assert banned.value.retry_after == 600  # Bybit: "wait for at least 10 minutes"
        assert_clean(banned.value)


async def test_concurrent_calls_through_the_master_keep_their_own_answers():
    async with stage({"binance": {"requests_per_second": 1}}) as s:
        keys = (BIN_A, BIN_B, BIN_C)
        outcomes = await asyncio.gather(
            *(s.binance.revoke(target(key, "broker")) for key in keys), return_exceptions=True
        )
        deleted = [key for key, outcome in zip(keys, outcomes, strict=True) if not isinstance(outcome, BaseException)]
        limited = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(deleted) == 1
        assert all(type(error) is RateLimited for error in limited)
        for key in keys:
            assert s.sim.is_live("binance", key.api_key) == (key not in deleted)


async def test_5xx_and_timeouts_are_venue_unavailable():
    async with stage(
        {"binance": {"error_rate": 1.0}, "bybit": {"timeout_rate": 1.0, "hang_seconds": 5}}, timeout_seconds=0.3
    ) as s:
        with pytest.raises(VenueUnavailable) as failed:
            await s.binance.probe(target(BIN_A))
        assert_clean(failed.value)
        with pytest.raises(VenueUnavailable) as timed_out:
            await s.bybit.revoke(target(BY_SUB, "sub"))
        assert str(timed_out.value) == "bybit: RequestTimeout"
        assert s.sim.is_live("bybit", BY_SUB.api_key)


async def test_unknown_method_and_missing_sub_account_are_refused():
    async with stage() as s:
        with pytest.raises(Misconfigured, match="no revoke method"):
            await s.binance.revoke(target(BIN_A, "self"))
        with pytest.raises(Misconfigured, match="no revoke method"):
            await s.bybit.revoke(target(BY_SELF, "broker"))
        # a name where Binance needs the sub-account's numeric id: our own set-up is wrong, nothing is sent
        for account_id, account_name in (("", ""), ("", "desk-5001")):
            no_account = KeyTarget("x", account_id, account_name, "broker", "fp-x", creds(BIN_A))
            with pytest.raises(
                Misconfigured, match=r"no numeric account_id \(sent as subAccountId\): add it and import the row again"
            ):
                await s.binance.revoke(no_account)
        assert s.sim.stats.requests["binance"] == 0


@pytest.fixture(autouse=True)
def _quiet_ccxt() -> None:
    # ccxt logs requests (with keys) at DEBUG; these tests only look at warnings
    logging.getLogger("ccxt").setLevel(logging.WARNING)
