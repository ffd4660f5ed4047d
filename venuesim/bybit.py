"""Bybit's v5 user API, as far as keyrevoke uses it: read a key's information, and delete keys.

Follows Bybit's own documentation:

- "Integration Guidance" (bybit-exchange.github.io/docs/v5/guide): headers ``X-BAPI-API-KEY``,
  ``X-BAPI-TIMESTAMP`` (ms), ``X-BAPI-RECV-WINDOW`` (default 5000) and ``X-BAPI-SIGN`` = lowercase
  hex HMAC-SHA256 of ``timestamp + api_key + recv_window + (query string | raw JSON body)``; a
  request is served only if ``server_time - recv_window <= timestamp < server_time + 1000``.
- "Error Codes" (bybit-exchange.github.io/docs/v5/error): business errors come back as HTTP 200
  with ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``: 10001 parameter error, 10002
  request time outside the window, 10003 "API key is invalid.", 10004 bad signature, 10005
  permission denied, 10006 over the API rate limit, 10010 "Unmatched IP, please check your API
  key's bound IP addresses."; HTTP 403 when the IP is banned for request frequency.
- "Rate Limit Rules" (bybit-exchange.github.io/docs/v5/rate-limit): answers carry
  ``X-Bapi-Limit``, ``X-Bapi-Limit-Status`` (remaining) and ``X-Bapi-Limit-Reset-Timestamp`` (ms);
  over the limit: retCode 10006 "Too many visits!"; IP ban: "403, access too frequent".
- "Get API Key Information" (bybit-exchange.github.io/docs/v5/user/apikey-info):
  ``GET /v5/user/query-api``, any permission, answers the calling key's details (with its apiKey).
- "Delete Master API Key" (bybit-exchange.github.io/docs/v5/user/rm-master-apikey):
  ``POST /v5/user/delete-api`` deletes the calling key at once; it needs "Account Transfer",
  "Subaccount Transfer" or "Withdrawal".
- "Delete Sub API Key" (bybit-exchange.github.io/docs/v5/user/rm-sub-apikey):
  ``POST /v5/user/delete-sub-api``; the master passes ``{"apikey": ...}``, a sub key calling it for
  itself passes nothing.

Simplifications and decisions (the documentation does not say): the rate limit is one budget per
venue (Bybit counts per UID and endpoint); rate-limit headers are sent only when the scenario sets
a limit; deleting a sub key that no longer exists answers retCode 10001; a non-master key passing
``apikey`` answers 10005.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from venuesim.protocol import Endpoint, Refusal, VenueProtocol, as_int
from venuesim.state import Principal

DEFAULT_RECV_WINDOW_MS = 5000
FUTURE_TOLERANCE_MS = 1000

INVALID_KEY = (10003, "API key is invalid.")
BAD_SIGN = (10004, "Error sign, please check your signature generation algorithm.")
NO_PERMISSION = (10005, "Permission denied, please check your API key permissions.")
TOO_MANY_VISITS = (10006, "Too many visits. Exceeded the API Rate Limit.")
UNMATCHED_IP = (10010, "Unmatched IP, please check your API key's bound IP addresses.")

#: keyrevoke permission words that let a key delete API keys ("Account Transfer", "Withdrawal", ...)
DELETE_PERMISSIONS = frozenset({"transfer", "withdraw"})


def bybit_answer(ret_code: int, ret_msg: str, result: Any = None) -> web.Response:
    """Bybit's v5 envelope; errors too are HTTP 200."""
    return web.json_response(
        {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": {} if result is None else result,
            "retExtInfo": {},
            "time": int(time.time() * 1000),
        }
    )


def _refuse(error: tuple[int, str]) -> Refusal:
    return Refusal(bybit_answer(*error))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class BybitProtocol(VenueProtocol):
    """Bybit v5 endpoints used to probe keys and to delete them."""

    name = "bybit"

    def endpoints(self) -> Iterable[Endpoint]:
        return (
            Endpoint("GET", "/v5/user/query-api", self.query_api),
            Endpoint("POST", "/v5/user/delete-api", self.delete_api),
            Endpoint("POST", "/v5/user/delete-sub-api", self.delete_sub_api),
        )

    # --- endpoints --------------------------------------------------------------------------------

    async def query_api(self, request: web.Request) -> web.StreamResponse:
        """Get API Key Information: the calling key's own details."""
        principal, _ = await self._signed(request)
        return bybit_answer(0, "", self._key_information(principal))

    async def delete_api(self, request: web.Request) -> web.StreamResponse:
        """Delete Master API Key: the calling key deletes itself."""
        principal, _ = await self._signed(request)
        return self._delete_self(principal)

    async def delete_sub_api(self, request: web.Request) -> web.StreamResponse:
        """Delete Sub API Key: the master deletes ``apikey``, or a sub key deletes itself."""
        principal, body = await self._signed(request)
        target = body.get("apikey")
        if not principal.is_master:
            if target:
                return bybit_answer(*NO_PERMISSION)
            return self._delete_self(principal)
        if self.gate.faults.master_lacks_permission:
            return bybit_answer(*NO_PERMISSION)
        if not isinstance(target, str) or not target:
            return bybit_answer(10001, "apikey is required when a master key deletes a sub key.")
        record = self.state.record(target)
        if record is None or not self.state.exists(target):
            return bybit_answer(10001, "The API key does not exist.")
        if self.state.delete(record):
            self.stats.deletes[self.name] += 1
        return self.deleted(bybit_answer(0, ""))

    def _delete_self(self, principal: Principal) -> web.Response:
        if principal.record is None:
            # the platform's master key is never deleted by the simulator
            return bybit_answer(*NO_PERMISSION)
        if not principal.permissions & DELETE_PERMISSIONS:
            return bybit_answer(*NO_PERMISSION)
        if self.state.delete(principal.record):
            self.stats.deletes[self.name] += 1
        # a key still inside its grace period may delete itself again: the answer is the same
        return self.deleted(bybit_answer(0, ""))

    def _key_information(self, principal: Principal) -> dict[str, Any]:
        permissions = principal.permissions
        trade = "trade" in permissions
        wallet = []
        if "transfer" in permissions:
            wallet += ["AccountTransfer", "SubMemberTransfer"]
        if "withdraw" in permissions:
            wallet.append("Withdraw")
        read_only = not (permissions & {"trade", "transfer", "withdraw"})
        created = datetime.fromtimestamp(self.state.created_ms / 1000, tz=UTC)
        key_id = principal.record.key.key_id if principal.record else "master"
        master = self.state.master
        return {
            "id": str(int(hashlib.sha256(key_id.encode()).hexdigest()[:12], 16)),
            "note": "",
            "apiKey": principal.api_key,
            "readOnly": 1 if read_only else 0,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"] if trade else [],
                "Spot": ["SpotTrade"] if trade else [],
                "Wallet": wallet,
                "Options": ["OptionsTrade"] if trade else [],
                "Derivatives": ["DerivativesTrade"] if trade else [],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": ["ExchangeHistory"],
                "NFT": [],
                "Earn": [],
            },
            "ips": ["*"],
            "type": 1,
            "deadlineDay": 89,
            "expiredAt": _iso(created + timedelta(days=90)),
            "createdAt": _iso(created),
            "unified": 0,
            "uta": 1,
            "userID": int(principal.account_id) if principal.account_id.isdigit() else 0,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": principal.is_master,
            "parentUid": "0" if principal.is_master or master is None else (master.account or "0"),
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    # --- shared faults in Bybit's words ------------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        return bybit_answer(*TOO_MANY_VISITS)

    def render_banned(self, retry_after: int) -> web.Response:
        return web.Response(status=403, text="access too frequent", content_type="text/plain")

    def decorate(self, response: web.StreamResponse) -> None:
        status = self.gate.rate_status()
        if not status.limit:
            return
        response.headers["X-Bapi-Limit"] = str(status.limit)
        response.headers["X-Bapi-Limit-Status"] = str(status.remaining)
        response.headers["X-Bapi-Limit-Reset-Timestamp"] = str(int(status.reset_at * 1000))

    # --- authentication ----------------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[Principal, dict[str, Any]]:
        """Check a signed v5 request as Bybit does; the caller and the JSON body (empty for GET)."""
        api_key = request.headers.get("X-BAPI-API-KEY", "")
        principal = self.state.authenticating(api_key) if api_key else None
        if principal is None:
            raise _refuse(INVALID_KEY)
        if self.state.is_ip_blocked(principal):
            raise _refuse(UNMATCHED_IP)

        timestamp = as_int(request.headers.get("X-BAPI-TIMESTAMP"))
        recv_window_text = request.headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW_MS))
        recv_window = as_int(recv_window_text)
        server_time = int(time.time() * 1000)
        if (
            timestamp is None
            or recv_window is None
            or not server_time - recv_window <= timestamp < server_time + FUTURE_TOLERANCE_MS
        ):
            msg = (
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{server_time}],recv_window[{recv_window}]"
            )
            raise Refusal(bybit_answer(10002, msg))

        if request.method == "GET":
            payload = request.rel_url.raw_query_string
            body: dict[str, Any] = {}
        else:
            payload = await request.text()
            try:
                parsed = json.loads(payload) if payload else {}
            except ValueError:
                raise Refusal(bybit_answer(10001, "body not json")) from None
            body = parsed if isinstance(parsed, dict) else {}
        origin = f"{request.headers['X-BAPI-TIMESTAMP']}{api_key}{recv_window_text}{payload}"
        expected = hmac.new(principal.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        signature = request.headers.get("X-BAPI-SIGN", "")
        if not signature.isascii() or not hmac.compare_digest(expected, signature.lower()):
            raise _refuse(BAD_SIGN)
        return principal, body
