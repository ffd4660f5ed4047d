"""Kraken and Coinbase: venues with no revocation API, whose keys are escalated to the exchange.

The simulators first, on the wire, signed here as each venue documents it (not through ccxt): Kraken's
HMAC-SHA512 ``API-Sign`` with its always-increasing nonce, Coinbase's ES256 bearer token. Then the
adapters through real ccxt objects: a live key is accepted with its permissions; ``revoke`` is refused
without any call (the batch escalates the key); a key the exchange deleted in bulk
(``VenueSimulator.revoke_by_exchange``) is rejected once its grace period is over; a tampered signature
is the venue's own error and never a rejected key; the shared faults arrive as keyrevoke's errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from activities.venues.base import Credentials, KeyTarget, VenueAdapter
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import ADAPTERS
from keyrevoke.errors import Misconfigured, RateLimited, RevokeRefused, VenueBanned, VenueUnavailable
from keyrevoke.venues import SUPPORTED_VENUES
from tests import venue_stage
from tests.venue_stage import TamperingFactory, exchanges_for, flip
from venuesim import Scenario, SimKey, VenueSimulator

# ccxt logs requests (with keys) at DEBUG; these tests only look at warnings.
pytestmark = pytest.mark.usefixtures("quiet_ccxt")

MANUAL = ("kraken", "coinbase")
ESCALATED = "no revocation API: escalated to the exchange's security team"


def ec_secret(*, pem: bool) -> str:
    """A fresh CDP secret: the PEM Coinbase hands out, or the base64 DER inside it (the inventory's form)."""
    key = ec.generate_private_key(ec.SECP256R1())
    if pem:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


def kraken_secret(seed: str) -> str:
    return base64.b64encode(hashlib.sha512(seed.encode()).digest()).decode()


KR_KEY = SimKey(
    "kraken-1", "kraken", "KrakenPub1+aZ/x", kraken_secret("one"), account="AA11", permissions=("read", "trade")
)
KR_OTHER = SimKey(
    "kraken-2", "kraken", "KrakenPub2+bY/w", kraken_secret("two"), account="AA22", permissions=("read", "withdraw")
)
CB_KEY = SimKey(
    "coinbase-1",
    "coinbase",
    "organizations/org-1/apiKeys/key-1",
    ec_secret(pem=False),
    account="portfolio-1",
    permissions=("read", "trade", "transfer"),
)
CB_OTHER = SimKey(
    "coinbase-2", "coinbase", "organizations/org-1/apiKeys/key-2", ec_secret(pem=True), permissions=("read",)
)
KEYS = {"kraken": (KR_KEY, KR_OTHER), "coinbase": (CB_KEY, CB_OTHER)}
#: what the probe of each venue's first key says it may do
PERMISSIONS = {"kraken": ("read", "trade"), "coinbase": ("read", "trade", "withdraw", "transfer")}
#: the venue's own answer to a tampered signature, as the probe reports it
BAD_SIGNATURE = {"kraken": "(error EAPI:Invalid signature)", "coinbase": "(HTTP 401)"}
#: the venue's own answer to a key it does not know (any more)
REJECTED = {
    "kraken": "rejected: AuthenticationError (error EAPI:Invalid key)",
    "coinbase": "rejected: AuthenticationError (HTTP 401)",
}


def target(key: SimKey, secret: str | None = None, method: str = "manual") -> KeyTarget:
    credentials = Credentials(key.api_key, key.secret if secret is None else secret)
    return KeyTarget(key.key_id, key.account_id, key.account_name, method, f"fp-{key.key_id}", credentials)


class Tampering(TamperingFactory):
    """Objects that sign as ccxt does, then change one character of the signature: Kraken's ``API-Sign``,
    or the signature part of Coinbase's bearer token."""

    def tamper(self, request: dict[str, Any]) -> None:
        headers = request.get("headers") or {}
        if "API-Sign" in headers:
            headers["API-Sign"] = flip(headers["API-Sign"])
        if str(headers.get("Authorization", "")).startswith("Bearer "):
            head, _, signature = headers["Authorization"].rpartition(".")
            headers["Authorization"] = f"{head}.{flip(signature)}"


@dataclass
class Stage:
    sim: VenueSimulator
    adapter: VenueAdapter
    venue: str

    @property
    def key(self) -> SimKey:
        return KEYS[self.venue][0]

    @property
    def other(self) -> SimKey:
        return KEYS[self.venue][1]

    def live(self, key: SimKey | None = None) -> bool:
        return self.sim.is_live(self.venue, (key or self.key).api_key)


@contextlib.asynccontextmanager
async def stage(
    venue: str, faults: dict[str, Any] | None = None, *, tamper: bool = False, timeout_seconds: float = 2.0
) -> AsyncIterator[Stage]:
    scenario = Scenario.from_dict({"seed": 11, "venues": {venue: faults or {}}})
    sim = VenueSimulator(KEYS[venue], (), scenario)
    factory = Tampering if tamper else ExchangeFactory
    async with exchanges_for(sim, factory, timeout_seconds=timeout_seconds) as exchanges:
        yield Stage(sim, ADAPTERS[venue](exchanges, None), venue)


def assert_clean(error: BaseException, venue: str) -> None:
    """A raised venue error carries no ccxt exception (its message holds the URL) and no key or secret."""
    venue_stage.assert_clean(error, [text for key in KEYS[venue] for text in (key.secret, key.api_key)])


# --- the registry --------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", MANUAL)
def test_manual_venues_are_registered_without_a_master(venue):
    assert SUPPORTED_VENUES[venue].methods == ("manual",)
    assert not SUPPORTED_VENUES[venue].needs_passphrase
    adapter = ADAPTERS[venue]
    assert adapter.venue == venue
    assert adapter.revoke_methods == ("manual",)
    assert adapter.master_methods == frozenset()
    assert venue in VenueSimulator.protocols


# --- Kraken on the wire ----------------------------------------------------------------------------


@pytest.fixture
async def wire() -> AsyncIterator[VenueSimulator]:
    async with VenueSimulator([*KEYS["kraken"], *KEYS["coinbase"]]) as simulator:
        yield simulator


async def kraken(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    key: SimKey,
    nonce: int,
    *,
    as_json: bool = False,
    secret: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """``POST /0/private/GetApiKeyInfo``, API-Sign = Base64(HMAC-SHA512(path + SHA256(nonce + data)))."""
    path = "/0/private/GetApiKeyInfo"
    data = json.dumps({"nonce": nonce}) if as_json else urlencode({"nonce": nonce})
    message = path.encode() + hashlib.sha256(f"{nonce}{data}".encode()).digest()
    mac = hmac.new(base64.b64decode(key.secret if secret is None else secret), message, hashlib.sha512)
    headers = {
        "API-Key": key.api_key,
        "API-Sign": base64.b64encode(mac.digest()).decode(),
        "Content-Type": "application/json" if as_json else "application/x-www-form-urlencoded",
    }
    async with http.post(f"{sim.base_url('kraken')}{path}", data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_kraken_get_api_key_info_answers_the_documented_fields(http, wire):
    status, body = await kraken(http, wire, KR_KEY, 1_000)
    assert status == 200
    assert body["error"] == []
    result = body["result"]
    for field in ("apiKeyName", "apiKey", "nonce", "nonceWindow", "permissions", "iban", "validUntil", "ipAllowlist"):
        assert field in result, field
    assert result["permissions"] == ["query-funds", "query-open-trades", "modify-trades"]
    assert result["nonce"] == "1000"
    _, other = await kraken(http, wire, KR_OTHER, 1_000)  # nonces are per key
    assert other["result"]["permissions"] == ["query-funds", "query-open-trades", "withdraw-funds"]


async def test_kraken_nonce_must_increase_and_json_bodies_sign_the_same_way(http, wire):
    assert (await kraken(http, wire, KR_KEY, 5_000))[1]["error"] == []
    assert (await kraken(http, wire, KR_KEY, 5_000)) == (200, {"error": ["EAPI:Invalid nonce"]})
    assert (await kraken(http, wire, KR_KEY, 4_999))[1] == {"error": ["EAPI:Invalid nonce"]}
    assert (await kraken(http, wire, KR_KEY, 5_001, as_json=True))[1]["error"] == []


async def test_kraken_errors_are_http_200_with_an_error_list(http, wire):
    # a bad signature does not use up the nonce: the same nonce works once signed right
    wrong = kraken_secret("not-the-secret")
    assert await kraken(http, wire, KR_KEY, 7_000, secret=wrong) == (200, {"error": ["EAPI:Invalid signature"]})
    assert (await kraken(http, wire, KR_KEY, 7_000))[1]["error"] == []
    unknown = replace(KR_KEY, api_key="KrakenNoSuchKey")
    assert await kraken(http, wire, unknown, 7_001) == (200, {"error": ["EAPI:Invalid key"]})
    async with http.post(f"{wire.base_url('kraken')}/0/private/GetApiKeyInfo", data="nonce=1") as response:
        assert (response.status, await response.json()) == (200, {"error": ["EAPI:Invalid key"]})


def test_kraken_refuses_a_secret_it_could_not_have_issued():
    with pytest.raises(ValueError, match="Base64"):
        VenueSimulator([replace(KR_KEY, secret="not base64!")])


# --- Coinbase on the wire --------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def coinbase_token(key: SimKey, uri: str, *, secret: str | None = None, issued: int | None = None) -> str:
    """An ES256 JWT as Coinbase's JWT Authentication page describes it, signed with ``cryptography``."""
    raw = secret if secret is not None else key.secret
    private = (
        serialization.load_pem_private_key(raw.encode(), None)
        if raw.startswith("-----BEGIN")
        else serialization.load_der_private_key(base64.b64decode(raw), None)
    )
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    now = int(time.time()) if issued is None else issued
    header = {"alg": "ES256", "typ": "JWT", "kid": key.api_key, "nonce": uuid.uuid4().hex}
    claims = {"iss": "cdp", "sub": key.api_key, "nbf": now, "exp": now + 120, "uri": uri}
    signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(private.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signed}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


async def coinbase(
    http: aiohttp.ClientSession, sim: VenueSimulator, token: str | None
) -> tuple[int, dict[str, Any] | str]:
    url = f"{sim.base_url('coinbase')}/api/v3/brokerage/key_permissions"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.get(url, headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def uri_of(sim: VenueSimulator, path: str = "/api/v3/brokerage/key_permissions") -> str:
    return f"GET {sim.host}:{sim.port('coinbase')}{path}"


async def test_coinbase_key_permissions_answers_the_documented_fields(http, wire):
    status, body = await coinbase(http, wire, coinbase_token(CB_KEY, uri_of(wire)))
    assert status == 200
    assert isinstance(body, dict)
    assert body["can_view"] is True
    assert body["can_trade"] is True
    assert body["can_transfer"] is True
    assert body["portfolio_type"] == "DEFAULT"
    assert uuid.UUID(body["portfolio_uuid"])
    status, body = await coinbase(http, wire, coinbase_token(CB_OTHER, uri_of(wire)))  # a PEM secret
    assert (status, body["can_trade"] if isinstance(body, dict) else body) == (200, False)


async def test_coinbase_answers_every_authentication_failure_with_one_401(http, wire):
    unauthorized = (401, "Unauthorized")
    assert await coinbase(http, wire, None) == unauthorized
    assert await coinbase(http, wire, "not.a.token") == unauthorized
    # a token signed with another key, for another request, or outside its two minutes
    other_secret = ec_secret(pem=True)
    assert await coinbase(http, wire, coinbase_token(CB_KEY, uri_of(wire), secret=other_secret)) == unauthorized
    wrong_path = uri_of(wire, "/api/v3/brokerage/accounts")
    assert await coinbase(http, wire, coinbase_token(CB_KEY, wrong_path)) == unauthorized
    old = int(time.time()) - 121
    assert await coinbase(http, wire, coinbase_token(CB_KEY, uri_of(wire), issued=old)) == unauthorized
    unknown = replace(CB_KEY, api_key="organizations/org-1/apiKeys/none")
    assert await coinbase(http, wire, coinbase_token(unknown, uri_of(wire), secret=CB_KEY.secret)) == unauthorized
    assert (await coinbase(http, wire, coinbase_token(CB_KEY, uri_of(wire))))[0] == 200


def test_coinbase_refuses_a_secret_it_could_not_have_issued():
    with pytest.raises(ValueError, match="ES256"):
        VenueSimulator([replace(CB_KEY, secret=kraken_secret("hmac-style"))])


# --- revoke_by_exchange ------------------------------------------------------------------------------


async def test_revoke_by_exchange_deletes_the_named_keys_or_every_key_of_the_venue():
    sim = VenueSimulator([*KEYS["kraken"], *KEYS["coinbase"]])
    assert sim.revoke_by_exchange("kraken", ["kraken-1"]) == 1
    assert not sim.is_live("kraken", KR_KEY.api_key)
    assert sim.is_live("kraken", KR_OTHER.api_key)
    assert sim.revoke_by_exchange("kraken", ["kraken-1"]) == 0  # already deleted: left as it was
    assert sim.revoke_by_exchange("kraken") == 1  # every key of the venue: only kraken-2 was left
    assert not sim.is_live("kraken", KR_OTHER.api_key)
    assert sim.is_live("coinbase", CB_KEY.api_key)  # other venues untouched
    assert sim.stats.deletes["kraken"] == 0  # not API deletes


def test_revoke_by_exchange_refuses_unknown_venues_and_keys_and_deletes_nothing():
    sim = VenueSimulator(KEYS["kraken"])
    with pytest.raises(KeyError, match="coinbase"):
        sim.revoke_by_exchange("coinbase")
    with pytest.raises(KeyError, match="kraken-9"):
        sim.revoke_by_exchange("kraken", ["kraken-1", "kraken-9"])
    with pytest.raises(TypeError):
        sim.revoke_by_exchange("kraken", "kraken-1")
    assert sim.is_live("kraken", KR_KEY.api_key)


# --- the adapters through ccxt -----------------------------------------------------------------------


@pytest.mark.parametrize("venue", MANUAL)
async def test_probe_accepts_a_live_key_with_its_permissions(venue):
    async with stage(venue) as s:
        first = await s.adapter.probe(target(s.key))
        assert first.accepted, first.detail
        assert first.permissions == PERMISSIONS[venue]
        again = await s.adapter.probe(target(s.key))  # a fresh ccxt object, right after: the nonce still rises
        assert again.accepted, again.detail
        assert (await s.adapter.probe(target(s.other))).accepted


@pytest.mark.parametrize("venue", MANUAL)
async def test_revoke_is_refused_without_any_call_so_the_key_is_escalated(venue):
    async with stage(venue) as s:
        with pytest.raises(RevokeRefused) as refused:
            await s.adapter.revoke(target(s.key))
        assert str(refused.value) == f"{venue}: {ESCALATED}"
        with pytest.raises(RevokeRefused):
            await s.adapter.revoke(target(s.key, method=""))  # the default method is manual
        with pytest.raises(Misconfigured, match="no revoke method"):
            await s.adapter.revoke(target(s.key, method="sub"))
        assert s.sim.stats.requests[venue] == 0
        assert s.live()


@pytest.mark.parametrize("venue", MANUAL)
async def test_a_key_revoked_by_the_exchange_is_rejected_by_the_probe(venue):
    async with stage(venue) as s:
        assert (await s.adapter.probe(target(s.key))).accepted  # the baseline
        assert s.sim.revoke_by_exchange(venue, [s.key.key_id]) == 1
        after = await s.adapter.probe(target(s.key))
        assert not after.accepted
        assert after.detail == REJECTED[venue]
        assert (await s.adapter.probe(target(s.other))).accepted  # only that key
        assert s.sim.revoke_by_exchange(venue) == 1
        assert not (await s.adapter.probe(target(s.other))).accepted


@pytest.mark.parametrize("venue", MANUAL)
async def test_a_key_revoked_by_the_exchange_may_work_for_its_grace_period(venue):
    grace = 2.0  # room for the first probe on a loaded machine: it must land inside the grace period
    async with stage(venue, {"revoke_grace_seconds": grace}) as s:
        s.sim.revoke_by_exchange(venue)
        deleted_by = time.time()  # the simulator stamped the deletion no later than this
        assert (await s.adapter.probe(target(s.key))).accepted  # not confirmed yet
        await asyncio.sleep(max(0.0, deleted_by + grace - time.time()) + 0.1)  # until the grace is over
        assert not (await s.adapter.probe(target(s.key))).accepted


@pytest.mark.parametrize("venue", MANUAL)
async def test_a_tampered_signature_is_the_venues_own_error_and_never_a_dead_key(venue):
    async with stage(venue, tamper=True) as s:
        with pytest.raises(RevokeRefused) as refused:
            await s.adapter.probe(target(s.key))
        message = str(refused.value)
        assert message.startswith(f"{venue}: signature refused: rejected: ")
        assert BAD_SIGNATURE[venue] in message
        assert_clean(refused.value, venue)
        assert s.live()
        assert s.sim.stats.requests[venue] == 1  # the venue did answer


async def test_kraken_a_wrong_secret_is_a_refused_signature_not_a_dead_key():
    async with stage("kraken") as s:
        with pytest.raises(RevokeRefused, match=r"signature refused: .*EAPI:Invalid signature"):
            await s.adapter.probe(target(s.key, secret=kraken_secret("not-the-secret")))


async def test_coinbase_a_secret_of_another_key_cannot_be_told_from_a_dead_key():
    # Coinbase answers both with the same 401, and the token verifies with the secret we hold: the probe
    # reports a rejection. keyrevoke confirms nothing on it: the key's baseline probe fails the same way.
    async with stage("coinbase") as s:
        answer = await s.adapter.probe(target(s.key, secret=ec_secret(pem=False)))
        assert not answer.accepted
        assert answer.detail == REJECTED["coinbase"]
        assert s.live()


# A PEM frame around no key at all, put together here so that no file holds a key-like block.
FAKE_PEM = "-----BEGIN EC " + "PRIVATE KEY-----\nnot a key\n-----END EC " + "PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("venue", "secret", "why"),
    [
        ("kraken", "not base64!", "Base64"),
        ("coinbase", kraken_secret("hmac-style"), "EC P-256"),
        ("coinbase", FAKE_PEM, "EC P-256"),
    ],
)
async def test_a_secret_the_venue_could_not_have_issued_is_refused_before_any_call(venue, secret, why):
    async with stage(venue) as s:
        with pytest.raises(RevokeRefused, match=why) as refused:
            await s.adapter.probe(target(s.key, secret=secret))
        assert secret not in str(refused.value)
        assert s.sim.stats.requests[venue] == 0


@pytest.mark.parametrize("venue", MANUAL)
async def test_an_unknown_or_ip_blocked_key_is_rejected(venue):
    async with stage(venue, {"ip_blocked_keys": [KEYS[venue][0].key_id]}) as s:
        blocked = await s.adapter.probe(target(s.key))
        assert not blocked.accepted
        assert s.live()  # it exists, only not from here
        if venue == "kraken":
            assert blocked.detail == "rejected: PermissionDenied (error EGeneral:Permission denied)"
        unknown = replace(s.other, api_key=f"{s.other.api_key}0")
        assert (await s.adapter.probe(target(unknown))).detail == REJECTED[venue]


# --- faults through the shared pipeline ----------------------------------------------------------------

#: how long each venue says to wait: Kraken's call counter decays by 0.33 per second, Coinbase counts per second
RETRY_HINT = {"kraken": 3.0, "coinbase": 1.0}
BAN_HINT = {"kraken": 180.0, "coinbase": None}


@pytest.mark.parametrize("venue", MANUAL)
async def test_5xx_and_hangs_are_venue_unavailable(venue):
    async with stage(venue, {"error_rate": 1.0}) as s:
        with pytest.raises(VenueUnavailable) as failed:
            await s.adapter.probe(target(s.key))
        assert type(failed.value) is VenueUnavailable
        assert_clean(failed.value, venue)
    async with stage(venue, {"timeout_rate": 1.0, "hang_seconds": 5}, timeout_seconds=0.3) as s:
        with pytest.raises(VenueUnavailable) as timed_out:
            await s.adapter.probe(target(s.key))
        assert str(timed_out.value) == f"{venue}: RequestTimeout"


@pytest.mark.parametrize("venue", MANUAL)
async def test_the_rate_limit_is_rate_limited_with_the_venues_hint(venue):
    async with stage(venue, {"requests_per_second": 1}) as s:
        assert (await s.adapter.probe(target(s.key))).accepted
        with pytest.raises(RateLimited) as limited:
            await s.adapter.probe(target(s.key))
        assert type(limited.value) is RateLimited  # not the VenueBanned subclass
        assert limited.value.retry_after == RETRY_HINT[venue]
        assert_clean(limited.value, venue)
        assert s.sim.stats.rate_limited[venue] == 1


@pytest.mark.parametrize("venue", MANUAL)
async def test_a_ban_is_venue_banned(venue):
    async with stage(venue, {"requests_per_second": 1, "ban_after_429s": 1, "ban_seconds": 90}) as s:
        assert (await s.adapter.probe(target(s.key))).accepted
        with pytest.raises(RateLimited):
            await s.adapter.probe(target(s.key))
        with pytest.raises(VenueBanned) as banned:
            await s.adapter.probe(target(s.key))
        # Kraken's lockout lasts "typically a few minutes"; Coinbase's front door says nothing, and the
        # circuit breaker's default wait applies
        assert banned.value.retry_after == BAN_HINT[venue]
        assert_clean(banned.value, venue)
        assert s.sim.stats.banned[venue] == 1
