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

import json
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import ccxt

from activities.venues.base import KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter
from activities.venues.classify import classify
from keyrevoke.errors import (
    RateLimited,
    RevokeRefused,
    UnsupportedVenue,
    VenueBanned,
    VenueError,
    VenueUnavailable,
)

PARAMETER_ERROR = 10001
BAD_SIGNATURE = 10004
#: "If you encounter the error '403, access too frequent' ... wait for at least 10 minutes."
IP_BAN_SECONDS = 600.0

TRADE_PERMISSIONS = ("ContractTrade", "Spot", "Options", "Derivatives")
TRANSFER_PERMISSIONS = frozenset({"AccountTransfer", "SubMemberTransfer", "SubMemberTransferList"})


@dataclass(frozen=True)
class _Answer:
    """The raw HTTP answer behind the last ccxt call of the current asyncio task (never its body)."""

    status: int
    headers: Mapping[str, str]
    code: int | None  # the venue's own error code ("retCode"), if the body carried one

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


def _venue_code(body: str) -> int | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    code = payload.get("retCode") if isinstance(payload, dict) else None
    return code if isinstance(code, int) else None


# Per asyncio task, so calls running at once through the one shared master object never mix answers
# (ccxt keeps the last headers per object, and no status code at all).
_LAST_ANSWER: ContextVar[_Answer | None] = ContextVar("bybit_last_answer", default=None)


def _remember(
    code: Any,
    reason: Any,
    url: Any,
    method: Any,
    response_headers: Any,
    response_body: Any,
    request_headers: Any,
    request_body: Any,
) -> Any:
    """ccxt's ``on_rest_response`` hook: note the answer, then do what ccxt's own hook does."""
    _LAST_ANSWER.set(_Answer(int(code), dict(response_headers or {}), _venue_code(response_body or "")))
    return response_body.strip()


def _watch(exchange: Any) -> Any:
    """Let ``exchange`` report its raw answers to this task (see ``_remember``)."""
    exchange.on_rest_response = _remember
    _LAST_ANSWER.set(None)
    return exchange


async def _release(exchange: Any) -> None:
    """Detach a per-key object from the shared session (ccxt warns about unclosed objects otherwise).

    The session is not ccxt's own, so ``close`` leaves it open; its exit pause is not needed here.
    """
    exchange.timeout_on_exit = 0
    await exchange.close()


class BybitAdapter(VenueAdapter):
    """Bybit v5 through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "bybit"
    revoke_methods = ("self", "sub")
    master_methods = frozenset({"sub"})

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own information: it authenticates, or Bybit rejects it."""
        exchange = _watch(self.exchanges.create(self.venue, target.credentials))
        try:
            response = await exchange.privateGetV5UserQueryApi()
        except ccxt.AuthenticationError as exc:  # PermissionDenied (10010 unmatched IP) included
            return ProbeAnswer(accepted=False, detail=_rejected(exc))
        except ccxt.BaseError as exc:
            raise self._classify(exc, exchange) from None
        finally:
            await _release(exchange)
        result = response.get("result") if isinstance(response, dict) else None
        if not isinstance(result, dict):
            raise VenueUnavailable(self.venue, "unexpected query-api answer")
        permissions = _permissions(result)
        ips = result.get("ips") or []
        bound = "any" if ips in (["*"], []) else "bound"
        detail = f"query-api: {','.join(permissions) or 'none'}; readOnly={result.get('readOnly')}; ips={bound}"
        return ProbeAnswer(accepted=True, permissions=permissions, detail=detail)

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key (by itself, or by the master); a key Bybit no longer knows is already gone."""
        method = target.method or self.revoke_methods[0]
        if method == "self":
            return await self._delete_self(target)
        if method == "sub":
            return await self._delete_sub(target)
        raise UnsupportedVenue(self.venue, f"no revoke method {method!r} (supported: self, sub)")

    async def _delete_self(self, target: KeyTarget) -> RevokeAnswer:
        exchange = _watch(self.exchanges.create(self.venue, target.credentials))
        try:
            await exchange.privatePostV5UserDeleteApi()
        except ccxt.PermissionDenied as exc:
            # 10005: the key lacks the wallet permissions to delete itself; 10010: not from this IP
            raise RevokeRefused(self.venue, f"the key may not delete itself: {_rejected(exc)}") from None
        except ccxt.AuthenticationError as exc:
            if _code() == BAD_SIGNATURE:
                # Bybit checks the key before the signature: the key exists, our secret is wrong
                raise RevokeRefused(self.venue, f"signature refused: {_rejected(exc)}") from None
            return RevokeAnswer(
                already_gone=True, detail=f"self delete: key no longer authenticates ({_rejected(exc)})"
            )
        except ccxt.BaseError as exc:
            raise self._classify(exc, exchange) from None
        finally:
            await _release(exchange)
        return RevokeAnswer(already_gone=False, detail="deleted by the key itself: POST user/delete-api")

    async def _delete_sub(self, target: KeyTarget) -> RevokeAnswer:
        if self.master is None:
            raise RevokeRefused(self.venue, "no master credentials configured for method 'sub'")
        exchange = _watch(self.exchanges.master(self.venue, self.master))
        try:
            await exchange.privatePostV5UserDeleteSubApi({"apikey": target.credentials.api_key})
        except ccxt.AuthenticationError as exc:  # PermissionDenied included
            raise RevokeRefused(self.venue, f"master refused: {_rejected(exc)}") from None
        except ccxt.BadRequest as exc:
            if _code() == PARAMETER_ERROR:
                # Bybit has no dedicated "no such key" code; verification probes confirm the key is dead
                return RevokeAnswer(already_gone=True, detail="sub delete: no such key (retCode 10001)")
            raise self._classify(exc, exchange) from None
        except ccxt.BaseError as exc:
            raise self._classify(exc, exchange) from None
        return RevokeAnswer(already_gone=False, detail="deleted by master: POST user/delete-sub-api")

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        answer = _LAST_ANSWER.get()
        headers = answer.headers if answer is not None else exchange.last_response_headers
        if isinstance(error, ccxt.RateLimitExceeded) and answer is not None:
            if answer.status == 403:
                retry_after = _seconds(answer.header("Retry-After"))
                return VenueBanned(self.venue, "RateLimitExceeded (HTTP 403)", retry_after or IP_BAN_SECONDS)
            return RateLimited(self.venue, type(error).__name__, _until(answer.header("X-Bapi-Limit-Reset-Timestamp")))
        return classify(self.venue, error, headers)


def _code() -> int | None:
    answer = _LAST_ANSWER.get()
    return answer.code if answer is not None else None


def _rejected(error: Exception) -> str:
    """``rejected: AuthenticationError (retCode 10003)``: the class and Bybit's code, nothing else."""
    code = _code()
    suffix = f" (retCode {code})" if code is not None else ""
    return f"rejected: {type(error).__name__}{suffix}"


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


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _until(reset_timestamp_ms: str | None) -> float | None:
    """Seconds until ``X-Bapi-Limit-Reset-Timestamp`` (milliseconds since the epoch)."""
    if reset_timestamp_ms is None:
        return None
    try:
        return max(0.0, int(reset_timestamp_ms) / 1000 - time.time())
    except ValueError:
        return None
