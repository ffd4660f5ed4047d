"""Bybit: probe a key by reading its own information; revoke it by itself, or as the master of its sub-account.

Follows Bybit's v5 documentation (bybit-exchange.github.io/docs/v5/...):

- probe: "Get API Key Information", ``GET /v5/user/query-api`` (user/apikey-info), signed by the key;
  any permission may call it. Its answer holds the key itself: only permissions leave this module;
- revoke ``self``: "Delete Master API Key", ``POST /v5/user/delete-api`` (user/rm-master-apikey): the
  key deletes itself, and needs "Account Transfer", "Subaccount Transfer" or "Withdrawal" for it;
- revoke ``sub``: "Delete Sub API Key", ``POST /v5/user/delete-sub-api`` with ``{"apikey": ...}``
  (user/rm-sub-apikey), signed by the platform's master key;
- answers: "Error Codes" (error): HTTP 200 with retCode 10003 invalid key, 10004 bad signature,
  10002 timestamp outside recv_window, 10005 permission denied, 10006 over the rate limit, 10010
  unmatched IP; and "Rate Limit Rules" (rate-limit): ``X-Bapi-Limit-Reset-Timestamp`` says when a
  limited caller may retry, and HTTP 403 "access too frequent" is an IP ban of at least 10 minutes.

ccxt maps retCodes to its classes (10003/10004 ``AuthenticationError``, 10005/10010
``PermissionDenied``, 10006 ``RateLimitExceeded``, 10002 ``InvalidNonce``) and HTTP 403 to
``RateLimitExceeded`` too; the HTTP status tells the ban from the rate limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt

from activities.venues.answers import AnswerLog, seconds, until
from activities.venues.base import (
    KeyTarget,
    ProbeAnswer,
    Rejected,
    RevokeAnswer,
    VenueAdapter,
    ip_binding,
    key_works,
    member,
)
from keyrevoke.errors import RateLimited, RevokeRefused, VenueBanned, VenueError

PARAMETER_ERROR = 10001
BAD_SIGNATURE = 10004
#: "If you encounter the error '403, access too frequent' ... wait for at least 10 minutes."
IP_BAN_SECONDS = 600.0

TRADE_PERMISSIONS = ("ContractTrade", "Spot", "Options", "Derivatives")
TRANSFER_PERMISSIONS = frozenset({"AccountTransfer", "SubMemberTransfer", "SubMemberTransferList"})


#: the raw answers behind this module's ccxt calls; Bybit's error code is in ``retCode``
ANSWERS = AnswerLog("bybit", "retCode")


class BybitAdapter(VenueAdapter):
    """Bybit v5 through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "bybit"
    revoke_methods = ("self", "sub")
    master_methods = frozenset({"sub"})
    answers = ANSWERS
    # Bybit has no dedicated "no such key" code; verification probes confirm the key is dead
    gone_codes = {PARAMETER_ERROR: "sub delete: no such key (retCode 10001)"}
    gone_class = ccxt.BadRequest

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own information: it authenticates, or Bybit rejects it."""
        # AuthenticationError rejects the key: PermissionDenied (10010 unmatched IP) included
        return await self.probe_as_key(target, lambda exchange: exchange.privateGetV5UserQueryApi(), "query-api", _read)

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key (by itself, or by the master); a key Bybit no longer knows is already gone."""
        if self.revoke_method(target) == "self":
            return await self._delete_self(target)
        params = {"apikey": target.credentials.api_key}
        return await self.call_as_master(
            target,
            lambda exchange: exchange.privatePostV5UserDeleteSubApi(params),
            "deleted by master: POST user/delete-sub-api",
        )

    async def _delete_self(self, target: KeyTarget) -> RevokeAnswer:
        answer = await self.call_as_key(target.credentials, lambda exchange: exchange.privatePostV5UserDeleteApi())
        if not isinstance(answer, Rejected):
            return RevokeAnswer(already_gone=False, detail="deleted by the key itself: POST user/delete-api")
        if isinstance(answer.error, ccxt.PermissionDenied):
            # 10005: the key lacks the wallet permissions to delete itself; 10010: not from this IP
            raise RevokeRefused(self.venue, f"the key may not delete itself: {answer.detail}") from None
        if ANSWERS.code() == BAD_SIGNATURE:
            # Bybit checks the key before the signature: the key exists, our secret is wrong
            raise RevokeRefused(self.venue, f"signature refused: {answer.detail}") from None
        return RevokeAnswer(already_gone=True, detail=f"self delete: key no longer authenticates ({answer.detail})")

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        answer = ANSWERS.last()
        if isinstance(error, ccxt.RateLimitExceeded) and answer is not None:
            if answer.status == 403:
                retry_after = seconds(answer.header("Retry-After"))
                return VenueBanned(self.venue, "RateLimitExceeded (HTTP 403)", retry_after or IP_BAN_SECONDS)
            return RateLimited(self.venue, type(error).__name__, until(answer.header("X-Bapi-Limit-Reset-Timestamp")))
        return self._by_class(error, exchange)


def _read(response: Any) -> ProbeAnswer | None:
    result = member(response, "result")
    if result is None:
        return None
    ips = result.get("ips") or []
    return key_works(
        "query-api", _permissions(result), readOnly=result.get("readOnly"), ips=ip_binding(ips not in (["*"], []))
    )


def _permissions(result: Mapping[str, Any]) -> tuple[str, ...]:
    granted = result.get("permissions")
    granted = granted if isinstance(granted, dict) else {}
    wallet = set(granted.get("Wallet") or ())
    found = ["read"]  # query-api answered: the key reads
    if result.get("readOnly") == 0 and any(granted.get(name) for name in TRADE_PERMISSIONS):
        found.append("trade")
    if "Withdraw" in wallet:
        found.append("withdraw")
    if wallet & TRANSFER_PERMISSIONS:
        found.append("transfer")
    return tuple(found)
