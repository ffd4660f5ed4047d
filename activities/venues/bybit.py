"""Bybit: probe a key by reading its own information; revoke it by itself, or as the master of its sub-account.

Follows Bybit's v5 documentation (bybit-exchange.github.io/docs/v5/...):

- probe: "Get API Key Information", ``GET /v5/user/query-api`` (user/apikey-info), signed by the key;
  any permission may call it. Its answer holds the key itself: only permissions leave this module;
- revoke ``self``, a main account's key (query-api's ``isMaster`` true): "Delete Master API Key",
  ``POST /v5/user/delete-api`` (user/rm-master-apikey): "Use master user's api key only"; the key
  deletes itself, and needs "Account Transfer", "Subaccount Transfer" or "Withdrawal" for it;
- revoke ``self``, a sub-account's key (``isMaster`` false): "Delete Sub API Key",
  ``POST /v5/user/delete-sub-api`` with no ``apikey`` (user/rm-sub-apikey): "Use the sub api key
  pending to be delete to call the endpoint", with "Account Transfer" or "Sub Member Transfer"
  (Withdrawal is not enough). A sub-account key without either is refused before any delete, as
  ``Misconfigured``: the inventory's method is wrong for it (``sub`` lets the master delete it);
- revoke ``sub``: "Delete Sub API Key", ``POST /v5/user/delete-sub-api`` with ``{"apikey": ...}``
  (user/rm-sub-apikey), signed by the platform's master key;
- answers: "Error Codes" (error): HTTP 200 with retCode 10003 invalid key, 10004 bad signature,
  10002 timestamp outside recv_window, 10005 permission denied, 10006 over the rate limit, 10010
  unmatched IP; HTTP 401 "Invalid request" (wrong key, or no authentication headers), whose body is
  not Bybit's JSON; and "Rate Limit Rules" (rate-limit): ``X-Bapi-Limit-Reset-Timestamp`` says when
  a limited caller may retry, and HTTP 403 "access too frequent" is an IP ban of at least 10 minutes.

ccxt maps retCodes to its classes (10003/10004 ``AuthenticationError``, 10005/10010
``PermissionDenied``, 10006 ``RateLimitExceeded``, 10002 ``InvalidNonce``), HTTP 401 to
``AuthenticationError`` whatever the body, and HTTP 403 to ``RateLimitExceeded`` too; the HTTP status
tells the ban from the rate limit. Both forms of a rejected key (HTTP 200 with 10003, HTTP 401) thus
reject it.

Which kind of key a ``self`` key is comes from its query-api answer: the baseline probe's, remembered
per key fingerprint by this adapter, so that the revoke costs one request; a key probed elsewhere (by
another worker) is looked up again first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ccxt

from activities.venues.answers import AnswerLog, seconds, until
from activities.venues.base import (
    Call,
    Credentials,
    KeyTarget,
    ProbeAnswer,
    Rejected,
    RevokeAnswer,
    VenueAdapter,
    ip_binding,
    key_works,
    member,
)
from keyrevoke.errors import Misconfigured, RateLimited, RevokeRefused, VenueBanned, VenueError, VenueUnavailable

if TYPE_CHECKING:
    from activities.venues.exchanges import ExchangeFactory

PARAMETER_ERROR = 10001
BAD_SIGNATURE = 10004
#: "If you encounter the error '403, access too frequent' ... wait for at least 10 minutes."
IP_BAN_SECONDS = 600.0

TRADE_PERMISSIONS = ("ContractTrade", "Spot", "Options", "Derivatives")
TRANSFER_PERMISSIONS = frozenset({"AccountTransfer", "SubMemberTransfer", "SubMemberTransferList"})
#: the Wallet rights with which a sub-account's key may delete itself: "Account Transfer" and "Sub Member
#: Transfer", which query-api lists as ``SubMemberTransferList`` for a sub-account's key (not Withdraw)
SUB_SELF_DELETE_PERMISSIONS = frozenset({"AccountTransfer", "SubMemberTransfer", "SubMemberTransferList"})
#: how many keys' query-api answers are remembered for their self delete
REMEMBERED_KEYS = 65_536

SUB_ACCOUNT_CANNOT_DELETE_ITSELF = (
    "method self does not fit this key: it is a sub-account's key (query-api isMaster=false), which Bybit "
    "lets delete itself only through delete-sub-api with Account Transfer or Sub Member Transfer, and it has "
    "neither (delete-api takes a main account's key only); list it with method sub, so that the platform's "
    "master deletes it"
)


#: the raw answers behind this module's ccxt calls; Bybit's error code is in ``retCode``
ANSWERS = AnswerLog("bybit", "retCode")


@dataclass(frozen=True)
class _Standing:
    """What a key's query-api said of it that decides how it deletes itself."""

    main_account: bool  # isMaster: a main account's key, else a sub-account's
    wallet: frozenset[str]  # its Wallet rights


class BybitAdapter(VenueAdapter):
    """Bybit v5 through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "bybit"
    revoke_methods = ("self", "sub")
    master_methods = frozenset({"sub"})
    answers = ANSWERS
    # Bybit has no dedicated "no such key" code; verification probes confirm the key is dead
    gone_codes = {PARAMETER_ERROR: "sub delete: no such key (retCode 10001)"}
    gone_class = ccxt.BadRequest

    def __init__(self, exchanges: ExchangeFactory, master: Credentials | None) -> None:
        super().__init__(exchanges, master)
        #: the standing of ``self`` keys probed here, by key fingerprint, oldest first
        self._standing: OrderedDict[str, _Standing] = OrderedDict()

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own information: it authenticates, or Bybit rejects it."""

        def read(response: Any) -> ProbeAnswer | None:
            probed = _read(response)
            standing = _standing(response)
            if probed is not None and standing is not None and (target.method or self.revoke_methods[0]) == "self":
                self._remember(target.fingerprint, standing)
            return probed

        # AuthenticationError rejects the key: PermissionDenied (10010 unmatched IP) and HTTP 401 included
        return await self.probe_as_key(target, _query_api, "query-api", read)

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key (by itself, or by the master); a key Bybit no longer knows is already gone.

        A ``self`` key that is a sub-account's and has no transfer right raises ``Misconfigured``
        before any delete is sent.
        """
        if self.revoke_method(target) == "self":
            return await self._delete_self(target)
        params = {"apikey": target.credentials.api_key}
        return await self.call_as_master(
            target,
            lambda exchange: exchange.privatePostV5UserDeleteSubApi(params),
            "deleted by master: POST user/delete-sub-api",
        )

    async def _delete_self(self, target: KeyTarget) -> RevokeAnswer:
        standing = self._standing.pop(target.fingerprint, None)
        if standing is None:
            # not probed here: ask the key what it is (a key that no longer authenticates is gone)
            response = await self.call_as_key(target.credentials, _query_api)
            if isinstance(response, Rejected):
                return self._rejected_self(response)
            standing = _standing(response)
            if standing is None:
                raise VenueUnavailable(self.venue, "unexpected query-api answer")
        call: Call
        if standing.main_account:
            call, endpoint = (lambda exchange: exchange.privatePostV5UserDeleteApi()), "delete-api"
        elif standing.wallet & SUB_SELF_DELETE_PERMISSIONS:
            call, endpoint = (lambda exchange: exchange.privatePostV5UserDeleteSubApi()), "delete-sub-api"
        else:
            raise Misconfigured(self.venue, SUB_ACCOUNT_CANNOT_DELETE_ITSELF)
        answer = await self.call_as_key(target.credentials, call)
        if isinstance(answer, Rejected):
            return self._rejected_self(answer)
        return RevokeAnswer(already_gone=False, detail=f"deleted by the key itself: POST user/{endpoint}")

    def _rejected_self(self, answer: Rejected) -> RevokeAnswer:
        """A key's own call rejected: refused if the key exists, else already gone."""
        if isinstance(answer.error, ccxt.PermissionDenied):
            # 10005: the key lacks the wallet permissions to delete itself; 10010: not from this IP
            raise RevokeRefused(self.venue, f"the key may not delete itself: {answer.detail}") from None
        if ANSWERS.code() == BAD_SIGNATURE:
            # Bybit checks the key before the signature: the key exists, our secret is wrong
            raise RevokeRefused(self.venue, f"signature refused: {answer.detail}") from None
        return RevokeAnswer(already_gone=True, detail=f"self delete: key no longer authenticates ({answer.detail})")

    def _remember(self, fingerprint: str, standing: _Standing) -> None:
        self._standing[fingerprint] = standing
        self._standing.move_to_end(fingerprint)
        while len(self._standing) > REMEMBERED_KEYS:
            self._standing.popitem(last=False)

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        answer = ANSWERS.last()
        if isinstance(error, ccxt.RateLimitExceeded) and answer is not None:
            if answer.status == 403:
                retry_after = seconds(answer.header("Retry-After"))
                return VenueBanned(self.venue, "RateLimitExceeded (HTTP 403)", retry_after or IP_BAN_SECONDS)
            return RateLimited(self.venue, type(error).__name__, until(answer.header("X-Bapi-Limit-Reset-Timestamp")))
        return self._by_class(error, exchange)


def _query_api(exchange: Any) -> Any:
    return exchange.privateGetV5UserQueryApi()


def _standing(response: Any) -> _Standing | None:
    """A key's standing from its query-api answer; None if the answer does not say whether it is a master's."""
    result = member(response, "result")
    if result is None or not isinstance(result.get("isMaster"), bool):
        return None
    granted = result.get("permissions")
    wallet = granted.get("Wallet") if isinstance(granted, dict) else None
    return _Standing(result["isMaster"], frozenset(wallet if isinstance(wallet, list) else ()))


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
