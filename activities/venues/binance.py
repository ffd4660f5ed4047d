"""Binance: probe a key by reading its own permissions; revoke it as the broker that owns its sub-account.

Follows Binance's documentation:

- probe: "Get API Key Permission (USER_DATA)", ``GET /sapi/v1/account/apiRestrictions``
  (developers.binance.com/docs/wallet/account/api-key-permission), signed by the key itself;
- revoke: "Delete Sub Account Api Key" (Binance Link), ``DELETE /sapi/v1/broker/subAccountApi`` with
  ``subAccountId`` and ``subAccountApiKey``, signed by the broker master key
  (developers.binance.com/docs/binance_link/exchange-link/account/Delete-Sub-Account-Api-Key);
- answers: "HTTP Return Codes" (429 rate limit, 418 IP ban, both with ``Retry-After``; 5XX outcome
  unknown) and "Error Codes" (-2014/-2015 invalid key, -1022 bad signature, -1021 timestamp outside
  recvWindow, -2008 "Invalid Api-Key ID.") in developers.binance.com/docs/binance-spot-api-docs.

Two answers need more than ccxt's exception class. ccxt raises ``DDoSProtection`` for both 429 and
418, so the HTTP status decides between ``RateLimited`` and ``VenueBanned``. And the broker delete
of a key that no longer exists comes back as -2008, which ccxt maps to ``AuthenticationError`` on
api.binance.com but to ``ExchangeError`` elsewhere: the venue's own code decides "already gone".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt

from activities.venues.answers import AnswerLog, seconds
from activities.venues.base import KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter, key_works
from keyrevoke.errors import Misconfigured, RateLimited, VenueBanned, VenueError

#: Binance's code for "Invalid Api-Key ID.": the key to delete does not exist (any more)
BAD_API_ID = -2008

# Flags of the apiRestrictions answer, by keyrevoke permission word.
TRADE_FLAGS = (
    "enableSpotAndMarginTrading",
    "enableMargin",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
)
TRANSFER_FLAGS = ("enableInternalTransfer", "permitsUniversalTransfer")


#: the raw answers behind this module's ccxt calls; Binance's error code is in ``code``
ANSWERS = AnswerLog("binance", "code")


class BinanceAdapter(VenueAdapter):
    """Binance through ccxt's implicit SAPI methods (pages listed in this module's docstring)."""

    venue = "binance"
    revoke_methods = ("broker",)
    master_methods = frozenset({"broker"})
    answers = ANSWERS
    gone_codes = {BAD_API_ID: "broker delete: -2008 Invalid Api-Key ID"}
    # AuthenticationError on the delete: the master key itself was refused (no permission, wrong
    # secret, not a broker)
    master_refused_as = "broker master refused"

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own restrictions: it authenticates, or Binance rejects it."""
        return await self.probe_as_key(
            target, lambda exchange: exchange.sapiGetAccountApiRestrictions(), "apiRestrictions", _read
        )

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key as the broker master; a key Binance no longer knows is already gone."""
        self.revoke_method(target)
        if not target.account:
            raise Misconfigured(self.venue, "the broker delete needs the key's sub-account id (inventory `account`)")
        params = {"subAccountId": target.account, "subAccountApiKey": target.credentials.api_key}
        return await self.call_as_master(
            target,
            lambda exchange: exchange.sapiDeleteBrokerSubAccountApi(params),
            "deleted by broker: DELETE broker/subAccountApi",
        )

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        answer = ANSWERS.last()
        if isinstance(error, ccxt.DDoSProtection) and answer is not None:
            retry_after = seconds(answer.header("Retry-After"))
            if answer.status == 429:
                return RateLimited(self.venue, "DDoSProtection (HTTP 429)", retry_after)
            if answer.status == 418:
                return VenueBanned(self.venue, "DDoSProtection (HTTP 418)", retry_after)
        return self._by_class(error, exchange)


def _read(restrictions: Any) -> ProbeAnswer | None:
    if not isinstance(restrictions, dict):
        return None
    return key_works("apiRestrictions", _permissions(restrictions), ipRestrict=bool(restrictions.get("ipRestrict")))


def _permissions(restrictions: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    if restrictions.get("enableReading"):
        found.append("read")
    if any(restrictions.get(flag) for flag in TRADE_FLAGS):
        found.append("trade")
    if restrictions.get("enableWithdrawals"):
        found.append("withdraw")
    if any(restrictions.get(flag) for flag in TRANSFER_FLAGS):
        found.append("transfer")
    return tuple(found)
