"""Binance's SAPI, as far as keyrevoke uses it: read a key's permissions, and a broker deleting keys.

Follows Binance's own documentation:

- "Request Security" (developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security):
  SIGNED endpoints take ``X-MBX-APIKEY``, a ``timestamp``, an optional ``recvWindow`` (default
  5000, at most 60000) and ``signature`` = hex HMAC-SHA256 of *totalParams* (the query string
  concatenated with the request body) keyed with the secret; the signature is not case sensitive.
  A request is processed only if ``timestamp < serverTime + 1000`` and
  ``serverTime - timestamp <= recvWindow``.
- "HTTP Return Codes" (.../rest-api/http-return-codes): 4XX for the sender's errors, 429 over a
  rate limit, 418 once banned for ignoring 429s, 5XX on Binance's side (outcome unknown).
- "Error Codes" (developers.binance.com/docs/binance-spot-api-docs/errors): -1002 UNAUTHORIZED,
  -1003 TOO_MANY_REQUESTS, -1021 INVALID_TIMESTAMP, -1022 INVALID_SIGNATURE, -1102 mandatory
  parameter, -1130 INVALID_PARAMETER, -1131 recvWindow too large, -2008 BAD_API_ID
  ("Invalid Api-Key ID."), -2014 BAD_API_KEY_FMT, -2015 REJECTED_MBX_KEY. Statuses: 401 for the
  API-key errors and -1002, 400 for the others, as Binance answers them.
- "General Info" / "LIMITS": every answer carries ``X-MBX-USED-WEIGHT-1M``; 418 and 429 carry
  ``Retry-After`` (seconds).
- "Get API Key Permission (USER_DATA)" (developers.binance.com/docs/wallet/account/api-key-permission):
  ``GET /sapi/v1/account/apiRestrictions``, weight 1.
- "Delete Sub Account Api Key" (developers.binance.com/docs/binance_link/exchange-link/account/
  Delete-Sub-Account-Api-Key): ``DELETE /sapi/v1/broker/subAccountApi`` with ``subAccountId`` and
  ``subAccountApiKey``, answer ``{}``; the calling broker key needs the "trade" option.

Decided here, because the documentation does not say: deleting a key that no longer exists answers
400 -2008 "Invalid Api-Key ID."; a key that exists under another sub-account answers 400 -1130; a
caller that is not the broker master answers 401 -1002; a broker master key without the needed
option answers 401 -2015.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from aiohttp import web

from venuesim.protocol import Endpoint, Refusal, VenueProtocol, as_int, total_params
from venuesim.state import Principal, SimKey

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
FUTURE_TOLERANCE_MS = 1000


def binance_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    """Binance's error payload: ``{"code": -1121, "msg": "Invalid symbol."}``."""
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _mandatory(name: str) -> Refusal:
    msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    return Refusal(binance_error(400, -1102, msg))


class BinanceProtocol(VenueProtocol):
    """Binance SAPI endpoints used to probe keys and to delete broker sub-account keys."""

    name = "binance"

    def endpoints(self) -> Iterable[Endpoint]:
        return (
            Endpoint("GET", "/sapi/v1/account/apiRestrictions", self.api_restrictions, weight=1),
            Endpoint("DELETE", "/sapi/v1/broker/subAccountApi", self.delete_sub_account_api, weight=1),
        )

    def validate_key(self, key: SimKey) -> None:
        # Binance keys are alphanumeric; anything else would only ever get -2014 here
        if not key.api_key.isascii() or not key.api_key.isalnum():
            raise ValueError(f"binance key {key.key_id!r}: api_key must be alphanumeric")

    # --- endpoints --------------------------------------------------------------------------------

    async def api_restrictions(self, request: web.Request) -> web.StreamResponse:
        """Get API Key Permission (USER_DATA): the signing key's own restrictions."""
        principal, _ = await self._signed(request)
        permissions = principal.permissions
        trade = "trade" in permissions
        withdraw = "withdraw" in permissions
        transfer = "transfer" in permissions
        return web.json_response(
            {
                # Binance only lets a key withdraw behind an IP allow-list
                "ipRestrict": withdraw,
                "createTime": self.state.created_ms,
                "enableReading": "read" in permissions,
                "enableWithdrawals": withdraw,
                "enableInternalTransfer": transfer,
                "enableMargin": False,
                "enableFutures": trade,
                "permitsUniversalTransfer": transfer,
                "enableVanillaOptions": False,
                "enableFixApiTrade": False,
                "enableFixReadOnly": False,
                "enableSpotAndMarginTrading": trade,
                "enablePortfolioMarginTrading": False,
            }
        )

    async def delete_sub_account_api(self, request: web.Request) -> web.StreamResponse:
        """Delete Sub Account Api Key (broker): the broker master deletes a sub-account's key."""
        principal, params = await self._signed(request)
        if not principal.is_master:
            return binance_error(401, -1002, "You are not authorized to execute this request.")
        if self.gate.faults.master_lacks_permission:
            return binance_error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        sub_account_id = params.get("subAccountId", "")
        api_key = params.get("subAccountApiKey", "")
        if not sub_account_id:
            raise _mandatory("subAccountId")
        if not api_key:
            raise _mandatory("subAccountApiKey")
        record = self.state.record(api_key)
        if record is None or not self.state.exists(api_key):
            return binance_error(400, -2008, "Invalid Api-Key ID.")
        # the sub-account's numeric id: its name (or any other value) is not valid here, as at Binance
        if record.key.account_id != sub_account_id:
            return binance_error(400, -1130, "Data sent for parameter 'subAccountId' is not valid.")
        if self.state.delete(record):
            self.stats.deletes[self.name] += 1
        return self.deleted(web.json_response({}))

    # --- shared faults in Binance's words ---------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        msg = (
            f"Too much request weight used; current limit is {self.gate.limit} request weight per 1 SECOND. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return binance_error(429, -1003, msg, headers={"Retry-After": str(retry_after)})

    def render_banned(self, retry_after: int) -> web.Response:
        until_ms = int((time.time() + retry_after) * 1000)
        msg = (
            f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        return binance_error(418, -1003, msg, headers={"Retry-After": str(retry_after)})

    def decorate(self, response: web.StreamResponse) -> None:
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.gate.used_weight_last_minute())

    # --- SIGNED endpoint security -----------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[Principal, dict[str, str]]:
        """Check a SIGNED request as Binance does; the caller and the request's parameters."""
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if not api_key or not api_key.isascii() or not api_key.isalnum():
            raise Refusal(binance_error(401, -2014, "API-key format invalid."))
        principal = self.state.authenticating(api_key)
        if principal is None or self.state.is_ip_blocked(principal):
            # Binance gives one answer for unknown, deleted and IP-restricted keys alike
            raise Refusal(binance_error(401, -2015, "Invalid API-key, IP, or permissions for action."))

        body = ""
        if request.content_type == "application/x-www-form-urlencoded":
            body = await request.text()
        signed, signature, params = total_params(request.rel_url.raw_query_string, body)

        if not signature or not signature.isascii():
            raise _mandatory("signature")
        timestamp = as_int(params.get("timestamp"))
        if timestamp is None:
            raise _mandatory("timestamp")
        recv_window = as_int(params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS)))
        if recv_window is None or recv_window <= 0:
            raise _mandatory("recvWindow")
        if recv_window > MAX_RECV_WINDOW_MS:
            raise Refusal(binance_error(400, -1131, "recvWindow must be less than 60000"))
        server_time = int(time.time() * 1000)
        if timestamp >= server_time + FUTURE_TOLERANCE_MS:
            msg = "Timestamp for this request was 1000ms ahead of the server's time."
            raise Refusal(binance_error(400, -1021, msg))
        if server_time - timestamp > recv_window:
            raise Refusal(binance_error(400, -1021, "Timestamp for this request is outside of the recvWindow."))

        expected = hmac.new(principal.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise Refusal(binance_error(400, -1022, "Signature for this request is not valid."))
        return principal, params
