"""MEXC's spot v3 API, as far as keyrevoke uses it: a key's own account, and a master account deleting
its sub-accounts' keys.

Follows MEXC's own documentation (www.mexc.com/api-docs/spot-v3/):

- "Authentication" (general-info#authentication): the key goes in ``X-MEXC-APIKEY``; SIGNED
  endpoints take ``timestamp`` (ms), an optional ``recvWindow`` (default 5000, at most 60000) and
  ``signature`` = hex HMAC-SHA256 of *totalParams* (the query string concatenated with the request
  body) keyed with the secret, "lowercase only"; a request is processed only if
  ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``.
- "Rate Limits" (general-info#limits): over a limit "code 429: Too many requests"; repeated
  violations get "an automated IP ban" (HTTP 418) "from 2 minutes to 3 days"; "A Retry-After header is
  sent with a 418 or 429 responses".
- "Error Codes" (general-info#error-code): ``{"code": ..., "msg": "..."}`` with 400 "api key
  required", 10072 "invalid access key", 700001 "API-key format invalid", 700002 "Signature for this
  request is not valid", 700003 "Timestamp for this request is outside of the recvWindow", 700005
  "recvWindow must less than 60000", 700006 "IP non white list", 700007 "No permission to access the
  endpoint", 730002 "Your input param is invalid", 730600 "Sub-account Name cannot be null", 730706
  "API KEY information does not exist", 140001 "sub account does not exist".
- "Account Information" (spot-account-trade#account-information): ``GET /api/v3/account``, weight 10;
  ``canTrade``, ``canWithdraw``, ``canDeposit``, ``accountType``, ``balances``, ``permissions``.
- "Delete the APIKey of a sub-account (For Master Account)"
  (subaccount-endpoints#delete-the-apikey-of-a-sub-account-for-master-account):
  ``DELETE /api/v3/sub-account/apiKey`` with ``subAccount`` and ``apiKey``, answers
  ``{"subAccount": ...}``.

Decided here, because the documentation does not say: errors answer HTTP 400, except 401 for a
missing key header and 403 for 700007; an unknown or deleted key answers 10072 "Api key info
invalid"; the 418 ban and the 429 bodies carry the HTTP status as ``code``; a key the named
sub-account does not have (any more) answers 730706.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from aiohttp import web

from venuesim.protocol import Endpoint, Refusal, VenueProtocol, as_int, total_params
from venuesim.state import Principal

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
FUTURE_TOLERANCE_MS = 1000


def mexc_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    """MEXC's error payload: ``{"code": 700002, "msg": "Signature for this request is not valid."}``."""
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _refuse(code: int, msg: str, status: int = 400) -> Refusal:
    return Refusal(mexc_error(status, code, msg))


class MexcProtocol(VenueProtocol):
    """MEXC spot v3 endpoints used to probe keys and to delete sub-account keys."""

    name = "mexc"

    def endpoints(self) -> Iterable[Endpoint]:
        return (
            Endpoint("GET", "/api/v3/account", self.account, weight=10),
            Endpoint("DELETE", "/api/v3/sub-account/apiKey", self.delete_sub_account_api_key, weight=1),
        )

    # --- endpoints --------------------------------------------------------------------------------

    async def account(self, request: web.Request) -> web.StreamResponse:
        """Account Information: the signing key's account, with what the key may do."""
        principal, _ = await self._signed(request)
        permissions = principal.permissions
        return web.json_response(
            {
                "makerCommission": None,
                "takerCommission": None,
                "buyerCommission": None,
                "sellerCommission": None,
                "canTrade": "trade" in permissions,
                "canWithdraw": "withdraw" in permissions,
                "canDeposit": True,
                "updateTime": None,
                "accountType": "SPOT",
                "balances": [],
                "permissions": ["SPOT"],
            }
        )

    async def delete_sub_account_api_key(self, request: web.Request) -> web.StreamResponse:
        """Delete the APIKey of a sub-account: the master deletes ``apiKey`` of ``subAccount``."""
        principal, params = await self._signed(request)
        if not principal.is_master or self.gate.faults.master_lacks_permission:
            return mexc_error(403, 700007, "No permission to access the endpoint.")
        sub_account, api_key = params.get("subAccount", ""), params.get("apiKey", "")
        if not sub_account:
            return mexc_error(400, 730600, "Sub-account Name cannot be null")
        if not api_key:
            return mexc_error(400, 730002, "Your input param is invalid")
        # the sub-account's name: its uid finds no sub-account, as at MEXC
        if not self.state.has_account_name(sub_account):
            return mexc_error(400, 140001, "sub account does not exist")
        record = self.state.record(api_key)
        if record is None or not self.state.exists(api_key) or record.key.account_name != sub_account:
            return mexc_error(400, 730706, "API KEY information does not exist")
        if self.state.delete(record):
            self.stats.deletes[self.name] += 1
        return self.deleted(web.json_response({"subAccount": sub_account}))

    # --- shared faults in MEXC's words -------------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        return mexc_error(429, 429, "Too many requests", headers={"Retry-After": str(retry_after)})

    def render_banned(self, retry_after: int) -> web.Response:
        return mexc_error(418, 418, "IP banned for too many requests", headers={"Retry-After": str(retry_after)})

    # --- SIGNED endpoint security -----------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[Principal, dict[str, str]]:
        """Check a SIGNED request as MEXC does; the caller and the request's parameters."""
        api_key = request.headers.get("X-MEXC-APIKEY", "")
        if not api_key:
            raise _refuse(400, "api key required", status=401)
        if not api_key.isascii() or not api_key.isalnum():
            raise _refuse(700001, "API-key format invalid.")
        principal = self.state.authenticating(api_key)
        if principal is None:
            raise _refuse(10072, "Api key info invalid")
        if self.state.is_ip_blocked(principal):
            raise _refuse(700006, "IP [127.0.0.1] not in the ip white list")

        body = await request.text() if request.can_read_body else ""
        signed, signature, params = total_params(request.rel_url.raw_query_string, body)

        timestamp = as_int(params.get("timestamp"))
        recv_window = as_int(params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS)))
        if recv_window is not None and recv_window > MAX_RECV_WINDOW_MS:
            raise _refuse(700005, "recvWindow must less than 60000")
        server_time = int(time.time() * 1000)
        if (
            timestamp is None
            or recv_window is None
            or not (timestamp < server_time + FUTURE_TOLERANCE_MS and server_time - timestamp <= recv_window)
        ):
            raise _refuse(700003, "Timestamp for this request is outside of the recvWindow.")

        expected = hmac.new(principal.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _refuse(700002, "Signature for this request is not valid.")
        return principal, params
