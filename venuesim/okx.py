"""OKX's v5 API, as far as keyrevoke uses it: a key's own account configuration, and a master deleting
its sub-accounts' keys.

Follows OKX's own documentation (www.okx.com/docs-v5/en/):

- "REST Authentication" (#overview-rest-authentication): headers ``OK-ACCESS-KEY``,
  ``OK-ACCESS-SIGN``, ``OK-ACCESS-TIMESTAMP`` (UTC, ISO 8601 with milliseconds, e.g.
  ``2020-12-08T09:08:57.715Z``) and ``OK-ACCESS-PASSPHRASE`` (the passphrase given when the key was
  made, sent as is); ``OK-ACCESS-SIGN`` = Base64 of HMAC-SHA256 over
  ``timestamp + METHOD + requestPath + body``, keyed with the secret, where a GET request's query
  string belongs to ``requestPath`` and the body is the raw JSON string.
- "Error Code" (#error-code-rest-api): bodies are ``{"code": "...", "msg": "...", "data": []}`` with
  the HTTP status each code is listed with: 50011 "Too Many Requests" (429), 50014 "Parameter {0}
  can not be empty" (400), 50102 "Timestamp request expired", 50103/50104/50106/50107 a missing
  ``OK-ACCESS-*`` header, 50105 passphrase incorrect, 50110 "Your IP ... is not included in your API
  key's IP whitelist", 50111 "Invalid OK-ACCESS-KEY", 50112 "Invalid OK-ACCESS-TIMESTAMP", 50113
  "Invalid signature" (all 401), 50120 "This API key doesn't have permission to use this function"
  (200), and in the sub-account class 59500 "Only the APIKey of the main account has permission for
  this operation" and 59506 "APIKey does not exist", answered with HTTP 200 like the other business
  codes.
- "Get account configuration" (#trading-account-rest-api-get-account-configuration):
  ``GET /api/v5/account/config``, any key; ``data[0]`` holds ``uid``, ``mainUid``, ``perm``
  (``read_only``, ``trade``, ``withdraw``, comma-separated), ``ip`` and ``label``.
- "Delete the API Key of sub-accounts" (#sub-account-rest-api-delete-the-api-key-of-sub-accounts):
  ``POST /api/v5/users/subaccount/delete-apikey`` with ``{"subAcct", "apiKey"}``, master accounts
  only, permission Trade, 1 request per second per user; answers ``data: [{"subAcct": ...}]``.

Decided here, because the documentation does not say: a request is accepted while its timestamp is
within 30 seconds of the server's time (the window OKX gives for WebSocket logins); a key under
another sub-account than ``subAcct`` answers 59506 like a missing one; OKX documents no IP ban for
REST, so a ban is the front door's HTTP 403 page; the rate-limit answer carries no header (OKX
documents none).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from venuesim.protocol import Endpoint, Refusal, VenueProtocol
from venuesim.state import Principal, SimKey

#: the prefix every path below has at OKX
API = "/api/v5"
#: how far ``OK-ACCESS-TIMESTAMP`` may be from the server's time
TIMESTAMP_WINDOW_MS = 30_000

NO_KEY_HEADER = ("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.')
NO_PASSPHRASE_HEADER = ("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.')
BAD_PASSPHRASE = ("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
NO_SIGN_HEADER = ("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.')
NO_TIMESTAMP_HEADER = ("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.')
TIMESTAMP_EXPIRED = ("50102", "Timestamp request expired.")
IP_NOT_ALLOWED = ("50110", "Your IP 127.0.0.1 is not included in your API key's IP whitelist.")
INVALID_KEY = ("50111", "Invalid OK-ACCESS-KEY.")
INVALID_TIMESTAMP = ("50112", "Invalid OK-ACCESS-TIMESTAMP.")
INVALID_SIGN = ("50113", "Invalid signature.")
NO_PERMISSION = ("50120", "This API key doesn't have permission to use this function")
MASTER_ONLY = ("59500", "Only the APIKey of the main account has permission for this operation.")
NO_SUCH_API_KEY = ("59506", "APIKey does not exist.")


def okx_answer(code: str, msg: str, data: list[Any] | None = None, status: int = 200) -> web.Response:
    """OKX's envelope: ``{"code": "0", "msg": "", "data": [...]}``, errors included."""
    return web.json_response({"code": code, "msg": msg, "data": [] if data is None else data}, status=status)


def _unauthorized(error: tuple[str, str]) -> Refusal:
    return Refusal(okx_answer(*error, status=401))


def _parse_timestamp(value: str) -> int | None:
    """Milliseconds since the epoch of an ``OK-ACCESS-TIMESTAMP`` such as ``2020-12-08T09:08:57.715Z``."""
    if not value.endswith("Z") or "T" not in value:
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


class OkxProtocol(VenueProtocol):
    """OKX v5 endpoints used to probe keys and to delete sub-account keys."""

    name = "okx"

    def endpoints(self) -> Iterable[Endpoint]:
        return (
            Endpoint("GET", f"{API}/account/config", self.account_config),
            Endpoint("POST", f"{API}/users/subaccount/delete-apikey", self.delete_apikey),
        )

    def validate_key(self, key: SimKey) -> None:
        if not key.passphrase:
            raise ValueError(f"okx key {key.key_id!r}: OKX keys always have a passphrase")

    # --- endpoints --------------------------------------------------------------------------------

    async def account_config(self, request: web.Request) -> web.StreamResponse:
        """Get account configuration: the calling key's account, with the key's own permissions."""
        principal, _ = await self._signed(request)
        return okx_answer("0", "", [self._config(principal)])

    async def delete_apikey(self, request: web.Request) -> web.StreamResponse:
        """Delete the API Key of sub-accounts: the master deletes ``apiKey`` of ``subAcct``."""
        principal, body = await self._signed(request)
        if not principal.is_master:
            return okx_answer(*MASTER_ONLY)
        if self.gate.faults.master_lacks_permission:
            return okx_answer(*NO_PERMISSION)
        for name in ("subAcct", "apiKey"):
            if not isinstance(body.get(name), str) or not body[name]:
                return okx_answer("50014", f"Parameter {name} can not be empty.", status=400)
        sub_account, api_key = body["subAcct"], body["apiKey"]
        record = self.state.record(api_key)
        if record is None or not self.state.exists(api_key) or record.key.account_name != sub_account:
            return okx_answer(*NO_SUCH_API_KEY)
        if self.state.delete(record):
            self.stats.deletes[self.name] += 1
        return self.deleted(okx_answer("0", "", [{"subAcct": sub_account}]))

    def _config(self, principal: Principal) -> dict[str, Any]:
        permissions = principal.permissions
        perm = ["read_only"]
        if "trade" in permissions or "transfer" in permissions:
            perm.append("trade")  # OKX's Trade permission covers funding transfers too
        if "withdraw" in permissions:
            perm.append("withdraw")
        master = self.state.master
        main_uid = master.account if master is not None and master.account else principal.account_id
        return {
            "uid": principal.account_id,
            "mainUid": principal.account_id if principal.is_master else main_uid,
            "acctLv": "1",
            "acctStpMode": "cancel_maker",
            "posMode": "net_mode",
            "autoLoan": False,
            "greeksType": "PA",
            "level": "Lv1",
            "levelTmp": "",
            "ctIsoMode": "automatic",
            "mgnIsoMode": "automatic",
            "roleType": "0",
            "traderInsts": [],
            "spotRoleType": "0",
            "spotTraderInsts": [],
            "opAuth": "0",
            "kycLv": "2",
            "label": "",
            "ip": "",
            "perm": ",".join(perm),
        }

    # --- shared faults in OKX's words -------------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        return okx_answer("50011", "Too Many Requests", status=429)

    # --- authentication ---------------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[Principal, dict[str, Any]]:
        """Check a private request as OKX does; the caller and the JSON body (empty for GET)."""
        headers = request.headers
        api_key = headers.get("OK-ACCESS-KEY", "")
        signature = headers.get("OK-ACCESS-SIGN", "")
        stamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
        for value, missing in (
            (api_key, NO_KEY_HEADER),
            (signature, NO_SIGN_HEADER),
            (stamp, NO_TIMESTAMP_HEADER),
            (passphrase, NO_PASSPHRASE_HEADER),
        ):
            if not value:
                raise _unauthorized(missing)
        timestamp = _parse_timestamp(stamp)
        if timestamp is None:
            raise _unauthorized(INVALID_TIMESTAMP)
        if abs(int(time.time() * 1000) - timestamp) > TIMESTAMP_WINDOW_MS:
            raise _unauthorized(TIMESTAMP_EXPIRED)

        principal = self.state.authenticating(api_key)
        if principal is None:
            raise _unauthorized(INVALID_KEY)
        if self.state.is_ip_blocked(principal):
            raise _unauthorized(IP_NOT_ALLOWED)
        if not hmac.compare_digest(passphrase.encode(), principal.passphrase.encode()):
            raise _unauthorized(BAD_PASSPHRASE)

        # the request path below the simulator's /okx prefix, query string included
        request_path = request.rel_url.raw_path_qs[len(self.prefix) :]
        raw_body = await request.text() if request.method != "GET" else ""
        prehash = f"{stamp}{request.method.upper()}{request_path}{raw_body}"
        digest = hmac.new(principal.secret.encode(), prehash.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest), signature.encode()):
            raise _unauthorized(INVALID_SIGN)

        body: dict[str, Any] = {}
        if raw_body:
            try:
                parsed = json.loads(raw_body)
            except ValueError:
                raise Refusal(okx_answer("50002", "JSON syntax error", status=400)) from None
            body = parsed if isinstance(parsed, dict) else {}
        return principal, body
