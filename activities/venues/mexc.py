"""MEXC: probe a key by reading its own account; revoke it as the master of its sub-account.

Follows MEXC's spot v3 documentation (www.mexc.com/api-docs/spot-v3/):

- probe: "Account Information", ``GET /api/v3/account`` (spot-account-trade#account-information),
  signed by the key itself; ``canTrade`` and ``canWithdraw`` say what the key may do;
- revoke ``sub``: "Delete the APIKey of a sub-account (For Master Account)",
  ``DELETE /api/v3/sub-account/apiKey`` with ``subAccount`` (the inventory's ``account_name``) and
  ``apiKey`` (subaccount-endpoints#delete-the-apikey-of-a-sub-account-for-master-account), signed by
  the master;
- signing: "Authentication" (general-info): ``X-MEXC-APIKEY``, ``timestamp``, ``recvWindow`` and a
  lowercase hex HMAC-SHA256 ``signature`` of the query string and body;
- answers: "Error Codes" (general-info#error-code): 10072 invalid access key, 700001 API-key format
  invalid, 700002 bad signature, 700003 timestamp outside recvWindow, 700006 IP not whitelisted,
  700007 no permission, 730706 "API KEY information does not exist", 140001 no such sub-account;
  "Rate Limits" (general-info#limits): HTTP 429 over the limit and 418 once banned, both with
  ``Retry-After`` in seconds.

ccxt maps 700001, 700002 and 700007 to ``AuthenticationError`` and 700003 to ``InvalidNonce``, but
10072 (an unknown or deleted key) and 700006 (an address the key is not bound to) to ``BadRequest``,
and 730706 to ``BadRequest`` too: MEXC's own codes decide "rejected" and "already gone". A 418 comes
back as a plain ``ExchangeError``: its HTTP status makes it a ban.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.venues.answers import AnswerLog
from activities.venues.base import KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter, key_works

#: codes that reject the key itself although ccxt calls them ``BadRequest``: invalid access key, and
#: a call from an address outside the key's IP whitelist (which hides whether the key exists)
KEY_REJECTED = frozenset({10072, 700006})
#: "API KEY information does not exist": the key to delete is not (any more) in the sub-account
NO_SUCH_API_KEY = 730706

#: the raw answers behind this module's ccxt calls; MEXC's error code is in ``code``
ANSWERS = AnswerLog("mexc", "code")


class MexcAdapter(VenueAdapter):
    """MEXC spot v3 through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "mexc"
    revoke_methods = ("sub",)
    master_methods = frozenset({"sub"})
    answers = ANSWERS
    # KEY_REJECTED on the master's delete means the master key itself was refused: no permission,
    # wrong secret, wrong address
    rejected_codes = KEY_REJECTED
    gone_codes = {NO_SUCH_API_KEY: "sub-account delete: 730706 API KEY information does not exist"}

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own account: it authenticates, or MEXC rejects it."""
        return await self.probe_as_key(target, lambda exchange: exchange.spotPrivateGetAccount(), "account", _read)

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key as the master of its sub-account; a key MEXC no longer knows is already gone."""
        self.revoke_method(target)
        params = {"subAccount": self.sub_account(target), "apiKey": target.credentials.api_key}
        return await self.call_as_master(
            target,
            lambda exchange: exchange.spotPrivateDeleteSubAccountApiKey(params),
            "deleted by master: DELETE sub-account/apiKey",
        )


def _read(account: Any) -> ProbeAnswer | None:
    if not isinstance(account, dict):
        return None
    return key_works("account", _permissions(account), accountType=account.get("accountType"))


def _permissions(account: Mapping[str, Any]) -> tuple[str, ...]:
    found = ["read"]  # the account answered: the key reads
    if account.get("canTrade"):
        found.append("trade")
    if account.get("canWithdraw"):
        found.append("withdraw")
    return tuple(found)
