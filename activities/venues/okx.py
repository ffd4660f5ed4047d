"""OKX: probe a key by reading its own account configuration; revoke it as the master of its sub-account.

Follows OKX's v5 documentation (www.okx.com/docs-v5/en/):

- probe: "Get account configuration", ``GET /api/v5/account/config``
  (#trading-account-rest-api-get-account-configuration), signed by the key itself with its
  passphrase; ``perm`` lists the key's permissions (``read_only``, ``trade``, ``withdraw``);
- revoke ``sub``: "Delete the API Key of sub-accounts", ``POST /api/v5/users/subaccount/delete-apikey``
  with ``subAcct`` (the inventory's ``account_name``) and ``apiKey``
  (#sub-account-rest-api-delete-the-api-key-of-sub-accounts), master accounts only, permission
  Trade, 1 request per second;
- signing: "REST Authentication" (#overview-rest-authentication): ``OK-ACCESS-KEY``,
  ``OK-ACCESS-SIGN``, ``OK-ACCESS-TIMESTAMP``, ``OK-ACCESS-PASSPHRASE`` (ccxt's ``password``);
- answers: "Error Code" (#error-code-rest-api): 50111 invalid key, 50113 invalid signature, 50105
  wrong passphrase, 50110 IP not whitelisted, 50102 timestamp expired (all HTTP 401), 50011 "Too Many
  Requests" (HTTP 429), 50120 "This API key doesn't have permission to use this function", 59500
  "Only the APIKey of the main account has permission", 59506 "APIKey does not exist".

ccxt maps the 501xx codes to ``AuthenticationError`` (50110 to ``PermissionDenied``, 50102 to
``InvalidNonce``) and 50011 to ``RateLimitExceeded``, but 59506, 59500 and 50120 all to a plain
``ExchangeError``: the venue's own code decides "already gone". OKX sends no Retry-After; its limits
are counted over 2-second windows, so a rate-limited call is retried after one window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.venues.answers import AnswerLog
from activities.venues.base import KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter, ip_binding, key_works

#: "APIKey does not exist": the key to delete is not (any more) in the sub-account
NO_SUCH_API_KEY = "59506"
#: the master key may not delete sub-account keys: not the main account's, or lacks the Trade permission
MASTER_REFUSED = frozenset({"59500", "50120", "50030"})
#: OKX counts its REST limits over 2-second windows and sends no Retry-After
RATE_WINDOW_SECONDS = 2.0

#: the raw answers behind this module's ccxt calls; OKX's error code is in ``code``
ANSWERS = AnswerLog("okx", "code")


class OkxAdapter(VenueAdapter):
    """OKX v5 through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "okx"
    revoke_methods = ("sub",)
    master_methods = frozenset({"sub"})
    answers = ANSWERS
    gone_codes = {NO_SUCH_API_KEY: "sub-account delete: 59506 APIKey does not exist"}
    master_refused_codes = MASTER_REFUSED
    rate_window = RATE_WINDOW_SECONDS

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's account configuration: it authenticates, or OKX rejects it."""
        self.require_passphrase(target, "OKX")
        # AuthenticationError rejects the key: PermissionDenied (50110, IP not whitelisted) included
        return await self.probe_as_key(
            target, lambda exchange: exchange.privateGetAccountConfig(), "account config", _read
        )

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key as the master of its sub-account; a key OKX no longer knows is already gone."""
        self.revoke_method(target)
        self.require_master_passphrase()
        params = {"subAcct": self.sub_account(target), "apiKey": target.credentials.api_key}
        return await self.call_as_master(
            target,
            lambda exchange: exchange.privatePostUsersSubaccountDeleteApikey(params),
            "deleted by master: POST users/subaccount/delete-apikey",
        )


def _read(response: Any) -> ProbeAnswer | None:
    data = response.get("data") if isinstance(response, dict) else None
    config = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
    if config is None:
        return None
    return key_works("account/config", _permissions(config), ip=ip_binding(config.get("ip")))


def _permissions(config: Mapping[str, Any]) -> tuple[str, ...]:
    granted = {word.strip() for word in str(config.get("perm") or "").split(",")}
    found = ["read"]  # account/config answered: the key reads
    if "trade" in granted:
        found.append("trade")
    if "withdraw" in granted:
        found.append("withdraw")
    return tuple(found)
