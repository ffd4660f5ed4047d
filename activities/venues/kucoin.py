"""KuCoin: probe a key by reading its own information; revoke it as the master of its sub-account.

Follows KuCoin's documentation (www.kucoin.com/docs-new/):

- probe: "Get API Key Info", ``GET /api/v1/user/api-key``, signed by the key itself; ``permission``
  lists what the key may do (General, Spot, Futures, InnerTransfer, Withdrawal, ...);
- revoke ``sub``: "Delete sub-account API", ``DELETE /api/v1/sub/api-key`` with ``subName`` (the
  inventory's ``account_name``), ``apiKey`` and the sub key's own ``passphrase``, signed by the master;
  "Get sub-account API List", ``GET /api/v1/sub/api-key`` with ``subName`` and ``apiKey``, tells
  whether a refused delete's key still exists;
- signing: "Authentication" (docs-new/authentication): ``KC-API-KEY``, ``KC-API-SIGN``,
  ``KC-API-TIMESTAMP``, ``KC-API-PASSPHRASE`` (itself signed with the secret for key versions 2 and
  3; ccxt sends ``KC-API-KEY-VERSION: 2``); GET and DELETE parameters are signed as they stand in
  the URL, un-encoded;
- answers: error codes 400003 "KC-API-KEY not exists", 400004 passphrase error, 400005 signature
  error, 400006 IP not whitelisted, 400007 access denied, 400002 timestamp invalid, 400100
  parameter error; "Rate Limit" (docs-new/rate-limit): HTTP 429 with code 429000, and the
  ``gw-ratelimit-reset`` header counts down, in milliseconds, to the quota's reset.

ccxt maps 400001-400007 to ``AuthenticationError`` (400002 to ``InvalidNonce``), 429000 to
``RateLimitExceeded`` and 400100 to ``BadRequest``. KuCoin documents no code for "no such key", so a
delete refused with 400100 is followed by a look at the sub-account's key list: a key that is not
listed is already gone; one that is listed was refused (a passphrase that is not the key's, say).

ccxt puts the parameters of a DELETE into the URL un-encoded, as KuCoin signs them: a passphrase
holding ``#``, ``&``, ``=``, ``+``, ``%`` or a space would not reach KuCoin intact, so such a key is
refused here rather than sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt

from activities.venues.answers import Answer, AnswerLog, seconds
from activities.venues.base import KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter, ip_binding, key_works, member
from keyrevoke.errors import Misconfigured, RevokeRefused, VenueUnavailable

PARAMETER_ERROR = "400100"
#: characters that an un-encoded query string cannot carry
UNSENDABLE = frozenset("#&=+% ")

TRADE_PERMISSIONS = frozenset({"Spot", "Margin", "Futures", "Earn", "LeadtradeFutures"})
TRANSFER_PERMISSIONS = frozenset({"InnerTransfer", "Transfer"})

#: the raw answers behind this module's ccxt calls; KuCoin's error code is in ``code``
ANSWERS = AnswerLog("kucoin", "code")


class KucoinAdapter(VenueAdapter):
    """KuCoin through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "kucoin"
    revoke_methods = ("sub",)
    master_methods = frozenset({"sub"})
    answers = ANSWERS

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own information: it authenticates, or KuCoin rejects it."""
        self.require_passphrase(target, "KuCoin")
        # AuthenticationError rejects the key: 400006 (IP not whitelisted) included
        return await self.probe_as_key(target, lambda exchange: exchange.privateGetUserApiKey(), "api-key", _read)

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key as the master of its sub-account; a key KuCoin no longer lists is already gone."""
        self.revoke_method(target)
        self.require_master_passphrase()
        sub_name = self.sub_account(target)
        passphrase = target.credentials.passphrase
        if not passphrase:
            raise Misconfigured(
                self.venue, "the sub-account delete needs the key's own passphrase (inventory `passphrase`)"
            )
        if UNSENDABLE & set(passphrase + sub_name):
            raise Misconfigured(
                self.venue, "the passphrase or sub-account name cannot travel un-encoded in a URL (inventory data)"
            )
        params = {"subName": sub_name, "apiKey": target.credentials.api_key, "passphrase": passphrase}
        return await self.call_as_master(
            target, lambda exchange: exchange.privateDeleteSubApiKey(params), "deleted by master: DELETE sub/api-key"
        )

    async def _already_gone(self, error: Exception, exchange: Any, target: KeyTarget) -> RevokeAnswer | None:
        """A delete refused with 400100 is gone if the key is no longer listed, refused if it still is."""
        if not isinstance(error, ccxt.BadRequest) or ANSWERS.code() != PARAMETER_ERROR:
            return None
        refusal = ANSWERS.rejected(error)
        if await self._still_listed(exchange, target):
            raise RevokeRefused(self.venue, f"delete refused, the key is still listed: {refusal}") from None
        return RevokeAnswer(already_gone=True, detail="sub-account delete: the key is no longer listed")

    async def _still_listed(self, exchange: Any, target: KeyTarget) -> bool:
        """Whether the master still sees the key in its sub-account's key list."""
        ANSWERS.watch(exchange)
        try:
            response = await exchange.privateGetSubApiKey(
                {"subName": self.sub_account(target), "apiKey": target.credentials.api_key}
            )
        except ccxt.BaseError as exc:
            raise self._classify(exc, exchange) from None
        keys = response.get("data") if isinstance(response, dict) else None
        if not isinstance(keys, list):
            raise VenueUnavailable(self.venue, "unexpected sub/api-key list answer")
        return any(isinstance(key, dict) and key.get("apiKey") == target.credentials.api_key for key in keys)

    def _retry_after(self, answer: Answer) -> float | None:
        reset = seconds(answer.header("gw-ratelimit-reset"))
        return reset / 1000 if reset is not None else None

    def _ban_retry_after(self, answer: Answer) -> float | None:
        return None


def _read(response: Any) -> ProbeAnswer | None:
    info = member(response, "data")
    if info is None:
        return None
    return key_works("user/api-key", _permissions(info), ipWhitelist=ip_binding(info.get("ipWhitelist")))


def _permissions(info: Mapping[str, Any]) -> tuple[str, ...]:
    granted = {word.strip() for word in str(info.get("permission") or "").split(",")}
    found = ["read"]  # user/api-key answered: the key reads
    if granted & TRADE_PERMISSIONS:
        found.append("trade")
    if "Withdrawal" in granted:
        found.append("withdraw")
    if granted & TRANSFER_PERMISSIONS:
        found.append("transfer")
    return tuple(found)
