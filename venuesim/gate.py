"""Gate's API v4, as far as keyrevoke uses it: a key's own account detail, and a main account deleting
its sub-accounts' keys.

Follows Gate's own documentation (www.gate.io/docs/developers/apiv4/en/):

- "APIv4 signed request requirements" and "API Signature string generation" (#authentication):
  headers ``KEY``, ``Timestamp`` (Unix seconds; "the gap between its value and current time cannot
  exceed 60 seconds") and ``SIGN`` = hex of HMAC-SHA512 over ``METHOD + "\\n" + URL + "\\n" +
  query string + "\\n" + hex(SHA512(body)) + "\\n" + Timestamp``, where the URL is the path from
  ``/api/v4`` on and the query string is taken "without URL encode", in the order of the request URL
  (empty string when there is none; an empty body hashes as the empty string).
- "Error Handling" (#error-handling) and "Return Format": every failure is a non-2xx status with
  ``{"label": "...", "message": "..."}``; 401 means a problem with the authentication, other 4xx an
  invalid request, 5xx the server. Labels used here: ``MISSING_REQUIRED_HEADER``, ``INVALID_KEY``,
  ``IP_FORBIDDEN``, ``INVALID_SIGNATURE``, ``REQUEST_EXPIRED`` (authentication), ``FORBIDDEN`` ("no
  permission to request operation"), ``TOO_MANY_REQUESTS``, ``SUB_ACCOUNT_NOT_FOUND``, ``NOT_FOUND``.
- "Frequency limit rule" (#frequency-limit-rule): every answer carries
  ``X-Gate-RateLimit-Requests-Remain``, ``X-Gate-RateLimit-Limit`` and
  ``X-Gate-RateLimit-Reset-Timestamp`` (when the limit resets once exceeded, otherwise the current
  time), sent here in milliseconds.
- "Get account detail" (``GET /account/detail``): ``user_id``, ``ip_whitelist``,
  ``currency_pairs``, ``key.mode``, ``tier``.
- "Delete API key of the sub-account" (``DELETE /sub_accounts/{user_id}/keys/{key}``): 204 with an
  empty body.

Decided here, because the documentation does not say: 403 for ``FORBIDDEN`` (a key that is not the
main account's, or that lacks the sub-account permission); a ``user_id`` no key of the venue belongs to
answers 404 ``SUB_ACCOUNT_NOT_FOUND``; a key the sub-account does not have (any more) answers 404
``NOT_FOUND``; Gate documents no IP ban, so a ban is the front door's HTTP 403 page; the rate-limit
headers are sent only when the scenario sets a limit.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from urllib.parse import unquote

from aiohttp import web

from venuesim.protocol import Endpoint, Refusal, VenueProtocol
from venuesim.state import Principal

#: the prefix every path below has at Gate, part of the signed URL
API = "/api/v4"
#: how far ``Timestamp`` may be from the server's time
TIMESTAMP_WINDOW_SECONDS = 60


def gate_error(status: int, label: str, message: str) -> web.Response:
    """Gate's error payload: ``{"label": "INVALID_KEY", "message": "..."}``."""
    return web.json_response({"label": label, "message": message}, status=status)


def _unauthorized(label: str, message: str) -> Refusal:
    return Refusal(gate_error(401, label, message))


class GateProtocol(VenueProtocol):
    """Gate API v4 endpoints used to probe keys and to delete sub-account keys."""

    name = "gate"

    def endpoints(self) -> Iterable[Endpoint]:
        return (
            Endpoint("GET", f"{API}/account/detail", self.account_detail),
            Endpoint("DELETE", f"{API}/sub_accounts/{{user_id}}/keys/{{key}}", self.delete_sub_account_key),
        )

    # --- endpoints --------------------------------------------------------------------------------

    async def account_detail(self, request: web.Request) -> web.StreamResponse:
        """Get account detail: the calling key's account."""
        principal = await self._signed(request)
        return web.json_response(
            {
                "user_id": int(principal.account_id) if principal.account_id.isdigit() else 0,
                "ip_whitelist": [],
                "currency_pairs": [],
                "key": {"mode": 1},
                "tier": 0,
                "copy_trading_role": 0,
            }
        )

    async def delete_sub_account_key(self, request: web.Request) -> web.StreamResponse:
        """Delete API key of the sub-account: the main account deletes ``key`` of ``user_id``."""
        principal = await self._signed(request)
        if not principal.is_master or self.gate.faults.master_lacks_permission:
            return gate_error(403, "FORBIDDEN", "Account has no permission to request operation")
        user_id, api_key = request.match_info["user_id"], request.match_info["key"]
        # the sub-account's numeric user id: its name finds no sub-account, as at Gate
        if not self.state.has_account_id(user_id):
            return gate_error(404, "SUB_ACCOUNT_NOT_FOUND", f"Sub account {user_id} not found")
        record = self.state.record(api_key)
        if record is None or not self.state.exists(api_key) or record.key.account_id != user_id:
            return gate_error(404, "NOT_FOUND", "API key not found")
        if self.state.delete(record):
            self.stats.deletes[self.name] += 1
        return self.deleted(web.Response(status=204))

    # --- shared faults in Gate's words ------------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        return gate_error(429, "TOO_MANY_REQUESTS", "Request Rate limit Exceeded")

    def decorate(self, response: web.StreamResponse) -> None:
        status = self.gate.rate_status()
        if not status.limit:
            return
        response.headers["X-Gate-RateLimit-Requests-Remain"] = str(status.remaining)
        response.headers["X-Gate-RateLimit-Limit"] = str(status.limit)
        response.headers["X-Gate-RateLimit-Reset-Timestamp"] = str(int(status.reset_at * 1000))

    # --- authentication ---------------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> Principal:
        """Check an APIv4 signed request as Gate does; the caller."""
        headers = request.headers
        api_key, signature, stamp = headers.get("KEY", ""), headers.get("SIGN", ""), headers.get("Timestamp", "")
        if not (api_key and signature and stamp):
            raise _unauthorized("MISSING_REQUIRED_HEADER", "Missing required authentication header")
        try:
            timestamp = float(stamp)
        except ValueError:
            raise _unauthorized("REQUEST_EXPIRED", "Request Timestamp is far from the server time") from None
        if abs(time.time() - timestamp) > TIMESTAMP_WINDOW_SECONDS:
            raise _unauthorized("REQUEST_EXPIRED", "Request Timestamp is far from the server time")

        principal = self.state.authenticating(api_key)
        if principal is None:
            raise _unauthorized("INVALID_KEY", "Invalid API Key")
        if self.state.is_ip_blocked(principal):
            raise _unauthorized("IP_FORBIDDEN", "Request IP not in whitelist")

        # the URL from /api/v4 on (below the simulator's /gate prefix); the query string un-encoded
        url = unquote(request.rel_url.raw_path[len(self.prefix) :])
        query = unquote(request.rel_url.raw_query_string)
        body = await request.read()
        payload = "\n".join((request.method.upper(), url, query, hashlib.sha512(body).hexdigest(), stamp))
        expected = hmac.new(principal.secret.encode(), payload.encode(), hashlib.sha512).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _unauthorized("INVALID_SIGNATURE", "Signature mismatch")
        return principal
