"""KuCoin's REST API, as far as keyrevoke uses it: a key's own information, and a master listing and
deleting its sub-accounts' keys.

Follows KuCoin's own documentation (www.kucoin.com/docs-new/):

- "Authentication" (docs-new/authentication): headers ``KC-API-KEY``, ``KC-API-SIGN``,
  ``KC-API-TIMESTAMP`` (milliseconds), ``KC-API-PASSPHRASE`` and ``KC-API-KEY-VERSION``;
  ``KC-API-SIGN`` = Base64 of HMAC-SHA256 over ``timestamp + METHOD + endpoint + body`` keyed with the
  secret, where GET and DELETE carry their parameters in the URL, and "the URL must use the content
  that has not been URL-encoded" (the page's example is ``DELETE /api/v1/sub/api-key?apiKey=...&
  subName=...&passphrase=...``); for key versions 2 and 3 ``KC-API-PASSPHRASE`` is itself Base64 of
  HMAC-SHA256 of the passphrase keyed with the secret (version 1 sent it in clear).
- "Rate Limit" (docs-new/rate-limit): over the quota, "http code:429, error code:429000"; every
  answer carries ``gw-ratelimit-limit``, ``gw-ratelimit-remaining`` and ``gw-ratelimit-reset`` (the
  countdown to the quota's reset, in milliseconds). HTTP statuses: 401 Unauthorized, 403 Forbidden,
  429, 500, 503.
- The error codes KuCoin's API pages list (ccxt's KuCoin code table repeats them), in bodies such
  as ``{"code": "400003", "msg": "..."}``: 400001 "Please check the header of your request for
  KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE", 400002 "KC-API-TIMESTAMP Invalid"
  (more than 5 seconds from the server's time), 400003 "KC-API-KEY not exists", 400004
  "KC-API-PASSPHRASE error", 400005 "Signature error", 400006 "The requested ip address is not in
  the api whitelist", 400007 "Access Denied -- Your api key does not have sufficient permissions to
  access the uri", 400100 parameter error; success is ``{"code": "200000", "data": ...}``.
- "Get API Key Info" (``GET /api/v1/user/api-key``): the calling key's ``remark``, ``apiKey``,
  ``apiVersion``, ``permission`` (comma-separated: General, Spot, Futures, InnerTransfer, Withdrawal,
  ...), ``ipWhitelist``, ``createdAt``, ``uid`` and ``isMaster``.
- "Get sub-account API List" (``GET /api/v1/sub/api-key`` with ``subName`` and optionally
  ``apiKey``) and "Delete sub-account API" (``DELETE /api/v1/sub/api-key`` with ``apiKey``,
  ``subName`` and the sub key's own ``passphrase``), master only; the delete answers
  ``{"subName", "apiKey"}``.

Decided here, because the documentation does not say: HTTP 401 for 400001-400005 and 403 for 400006
and 400007; a delete of a key the sub-account does not have (any more), or with a passphrase that is
not the key's, answers 400100 (KuCoin documents no "no such key" code: the adapter asks the list to
tell them apart); the list answers ``[]`` for keys that are gone; partner headers
(``KC-API-PARTNER*``) are ignored; a ban is the front door's HTTP 403 page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from venuesim.protocol import Endpoint, Refusal, VenueProtocol
from venuesim.state import Principal, SimKey

#: how far ``KC-API-TIMESTAMP`` may be from the server's time
TIMESTAMP_WINDOW_MS = 5000

MISSING_HEADER = (
    "400001",
    "Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE",
)
INVALID_TIMESTAMP = ("400002", "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds")
INVALID_KEY = ("400003", "KC-API-KEY not exists")
BAD_PASSPHRASE = ("400004", "KC-API-PASSPHRASE error")
BAD_SIGN = ("400005", "Signature error -- Please check your signature")
IP_NOT_ALLOWED = ("400006", "The requested ip address is not in the api whitelist")
ACCESS_DENIED = ("400007", "Access Denied -- Your api key does not have sufficient permissions to access the uri")
PARAMETER_ERROR = "400100"
SUCCESS = "200000"


def kucoin_error(code: str, msg: str, status: int) -> web.Response:
    """KuCoin's error payload: ``{"code": "400003", "msg": "KC-API-KEY not exists"}``."""
    return web.json_response({"code": code, "msg": msg}, status=status)


def kucoin_data(data: Any) -> web.Response:
    return web.json_response({"code": SUCCESS, "data": data})


def _refuse(error: tuple[str, str], status: int = 401) -> Refusal:
    return Refusal(kucoin_error(*error, status=status))


def _signed_passphrase(passphrase: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), passphrase.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class KucoinProtocol(VenueProtocol):
    """KuCoin endpoints used to probe keys and to delete sub-account keys."""

    name = "kucoin"

    def endpoints(self) -> Iterable[Endpoint]:
        return (
            Endpoint("GET", "/api/v1/user/api-key", self.user_api_key),
            Endpoint("GET", "/api/v1/sub/api-key", self.sub_api_keys),
            Endpoint("DELETE", "/api/v1/sub/api-key", self.delete_sub_api_key),
        )

    def validate_key(self, key: SimKey) -> None:
        if not key.passphrase:
            raise ValueError(f"kucoin key {key.key_id!r}: KuCoin keys always have a passphrase")

    # --- endpoints --------------------------------------------------------------------------------

    async def user_api_key(self, request: web.Request) -> web.StreamResponse:
        """Get API Key Info: the calling key's own details."""
        principal, _ = await self._signed(request)
        info = self._key_info(principal.api_key, principal.account_id, principal.permissions, principal.is_master)
        return kucoin_data(info)

    async def sub_api_keys(self, request: web.Request) -> web.StreamResponse:
        """Get sub-account API List: the master lists a sub-account's keys (one, with ``apiKey``)."""
        principal, params = await self._signed(request)
        if refusal := self._master_only(principal):
            return refusal
        sub_name = params.get("subName", "")
        if not sub_name:
            return kucoin_error(PARAMETER_ERROR, "subName is required", 400)
        wanted = params.get("apiKey", "")
        keys = [
            {
                "subName": sub_name,
                **self._key_info(record.key.api_key, record.key.account_id, record.key.permissions, False),
            }
            for record in self.state.records_of(sub_name)
            if record.deleted_at is None and (not wanted or record.key.api_key == wanted)
        ]
        return kucoin_data(keys)

    async def delete_sub_api_key(self, request: web.Request) -> web.StreamResponse:
        """Delete sub-account API: the master deletes ``apiKey`` of ``subName``, given its passphrase."""
        principal, params = await self._signed(request)
        if refusal := self._master_only(principal):
            return refusal
        for name in ("apiKey", "subName", "passphrase"):
            if not params.get(name):
                return kucoin_error(PARAMETER_ERROR, f"{name} is required", 400)
        api_key = params["apiKey"]
        record = self.state.record(api_key)
        if (
            record is None
            or not self.state.exists(api_key)
            or record.key.account_name != params["subName"]  # the name: a uid is no subName
            or not hmac.compare_digest(record.key.passphrase.encode(), params["passphrase"].encode())
        ):
            return kucoin_error(PARAMETER_ERROR, "Parameter error: the API key cannot be deleted", 400)
        if self.state.delete(record):
            self.stats.deletes[self.name] += 1
        return self.deleted(kucoin_data({"subName": record.key.account_name, "apiKey": api_key}))

    def _master_only(self, principal: Principal) -> web.Response | None:
        if not principal.is_master or self.gate.faults.master_lacks_permission:
            return kucoin_error(*ACCESS_DENIED, status=403)
        return None

    def _key_info(self, api_key: str, uid: str, permissions: Collection[str], is_master: bool) -> dict[str, Any]:
        """A key's entry, as Get API Key Info answers it and the sub-account API list repeats it."""
        granted = ["General"]
        if "trade" in permissions:
            granted += ["Spot", "Futures"]
        if "transfer" in permissions:
            granted.append("InnerTransfer")
        if "withdraw" in permissions:
            granted.append("Withdrawal")
        return {
            "remark": "",
            "apiKey": api_key,
            "apiVersion": 3,
            "permission": ",".join(granted),
            "ipWhitelist": "",
            "createdAt": self.state.created_ms,
            "uid": int(uid) if uid.isdigit() else 0,
            "isMaster": is_master,
        }

    # --- shared faults in KuCoin's words -----------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        return kucoin_error("429000", "Too Many Requests", 429)

    def decorate(self, response: web.StreamResponse) -> None:
        status = self.gate.rate_status()
        if not status.limit:
            return
        response.headers["gw-ratelimit-limit"] = str(status.limit)
        response.headers["gw-ratelimit-remaining"] = str(status.remaining)
        response.headers["gw-ratelimit-reset"] = str(max(0, int((status.reset_at - time.time()) * 1000)))

    # --- authentication ----------------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[Principal, dict[str, str]]:
        """Check a private request as KuCoin does; the caller and the query parameters."""
        headers = request.headers
        api_key = headers.get("KC-API-KEY", "")
        signature = headers.get("KC-API-SIGN", "")
        stamp = headers.get("KC-API-TIMESTAMP", "")
        passphrase = headers.get("KC-API-PASSPHRASE", "")
        if not (api_key and signature and stamp and passphrase):
            raise _refuse(MISSING_HEADER)
        try:
            timestamp = int(stamp)
        except ValueError:
            raise _refuse(INVALID_TIMESTAMP) from None
        if abs(int(time.time() * 1000) - timestamp) > TIMESTAMP_WINDOW_MS:
            raise _refuse(INVALID_TIMESTAMP)

        principal = self.state.authenticating(api_key)
        if principal is None:
            raise _refuse(INVALID_KEY)
        if self.state.is_ip_blocked(principal):
            raise _refuse(IP_NOT_ALLOWED, status=403)
        if headers.get("KC-API-KEY-VERSION", "1") in ("2", "3"):
            expected_passphrase = _signed_passphrase(principal.passphrase, principal.secret)
        else:
            expected_passphrase = principal.passphrase
        if not hmac.compare_digest(passphrase.encode(), expected_passphrase.encode()):
            raise _refuse(BAD_PASSPHRASE)

        # the endpoint below the simulator's /kucoin prefix, as it was before URL encoding
        endpoint = unquote(request.rel_url.raw_path_qs[len(self.prefix) :])
        body = await request.text() if request.method not in ("GET", "DELETE") else ""
        prehash = f"{stamp}{request.method.upper()}{endpoint}{body}"
        digest = hmac.new(principal.secret.encode(), prehash.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest), signature.encode()):
            raise _refuse(BAD_SIGN)
        return principal, dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
