"""Kraken's Spot REST API, as far as keyrevoke uses it: a key reading its own information.

Kraken offers no call that deletes an API key, neither the key's own nor another account's: a leaked
Kraken key is revoked by Kraken's security team (see ``VenueSimulator.revoke_by_exchange``), and this
module only answers the probe.

Follows Kraken's own documentation (docs.kraken.com):

- "Spot REST Authentication" (docs.kraken.com/api/docs/guides/spot-rest-auth): headers ``API-Key``
  (the public key) and ``API-Sign`` = Base64 of HMAC-SHA512 over ``URI path + SHA256(nonce + POST
  data)``, keyed with the Base64-decoded secret, where the URI path is the part from ``/0/private``
  on; ``nonce`` is a payload parameter, an "always increasing, unsigned 64-bit integer".
- "Requests, Responses and Errors" (docs.kraken.com/exchange/guides/rest/introduction): payloads are
  form-encoded or JSON; answers are JSON with ``error`` (a list of strings) and ``result``; "HTTP
  status codes are generally not used by our API": errors come back as HTTP 200 with the list filled.
- "Errors" (docs.kraken.com/exchange/guides/general/errors): ``EAPI:Invalid key`` (the API-Key header
  is missing, malformed, or names a key that was deleted or revoked), ``EAPI:Invalid signature`` (the
  API-Sign header does not match), ``EAPI:Invalid nonce`` (a nonce not above the last one accepted for
  the key), ``EGeneral:Temporary lockout`` (after too many invalid-key errors; "typically a few
  minutes").
- "Spot REST Rate Limits" (docs.kraken.com/api/docs/guides/spot-rest-ratelimits): a call counter per
  key (Starter tier: at most 15, decaying by 0.33 per second); over it, ``EAPI:Rate limit exceeded``.
- "Get API Key Info" (docs.kraken.com/api-reference/account-data/get-api-key-info):
  ``POST /0/private/GetApiKeyInfo``, no permission needed; ``result`` holds ``apiKeyName``,
  ``apiKey``, ``nonce``, ``nonceWindow``, ``permissions`` (e.g. ``query-funds``, ``withdraw-funds``,
  ``query-open-trades``, ``modify-trades``), ``iban``, ``validUntil``, ``queryFrom``, ``queryTo``,
  ``createdTime``, ``modifiedTime``, ``ipAllowlist`` and ``lastUsed``.

Decided here, because the documentation does not say: the checks run in the order key, signature,
IP allow-list, nonce, so that only a request that would otherwise succeed uses up its nonce (the
nonce window is 0); a key used from outside its IP allow-list answers ``EGeneral:Permission denied``;
a missing or non-numeric nonce answers ``EAPI:Invalid nonce``; the shared faults' ban is Kraken's
temporary lockout; no rate-limit header is sent (Kraken documents none). Kraken's permission words
are mapped from keyrevoke's: read -> ``query-funds``, ``query-open-trades``; trade ->
``modify-trades``; withdraw or transfer -> ``withdraw-funds`` (Kraken moves funds between its own
wallets under the withdraw permission).

Kraken's support article "Common causes of invalid key error" says a signature that does not match
the POST data is answered ``EAPI:Invalid key``; the API documentation's error list names
``EAPI:Invalid signature`` for it. This module follows the API documentation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from venuesim.faults import FaultGate
from venuesim.protocol import Endpoint, Refusal, VenueProtocol
from venuesim.state import Principal, SimKey, VenueState
from venuesim.stats import SimStats

#: the prefix of every private path at Kraken, part of the signed URI path
PRIVATE = "/0/private"

INVALID_KEY = "EAPI:Invalid key"
INVALID_SIGNATURE = "EAPI:Invalid signature"
INVALID_NONCE = "EAPI:Invalid nonce"
RATE_LIMITED = "EAPI:Rate limit exceeded"
LOCKOUT = "EGeneral:Temporary lockout"
PERMISSION_DENIED = "EGeneral:Permission denied"


def kraken_error(*errors: str) -> web.Response:
    """Kraken's error answer: HTTP 200 with ``{"error": ["EAPI:Invalid key"]}``."""
    return web.json_response({"error": list(errors)})


def kraken_result(result: Any) -> web.Response:
    return web.json_response({"error": [], "result": result})


def _refuse(error: str) -> Refusal:
    return Refusal(kraken_error(error))


def decoded_secret(secret: str) -> bytes | None:
    """The HMAC key of a Kraken secret (it is Base64); None if the text is not Base64."""
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return None


def sign(secret: bytes, uri_path: str, nonce: str, post_data: str) -> str:
    """Kraken's ``API-Sign``: Base64(HMAC-SHA512(secret, uri_path + SHA256(nonce + post_data)))."""
    message = uri_path.encode() + hashlib.sha256((nonce + post_data).encode()).digest()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha512).digest()).decode()


class KrakenProtocol(VenueProtocol):
    """Kraken Spot REST: the private call a key uses to read its own information."""

    name = "kraken"

    def __init__(self, state: VenueState, gate: FaultGate, stats: SimStats) -> None:
        super().__init__(state, gate, stats)
        #: the highest nonce accepted so far, per api_key
        self._nonces: dict[str, int] = {}

    def endpoints(self) -> Iterable[Endpoint]:
        return (Endpoint("POST", f"{PRIVATE}/GetApiKeyInfo", self.get_api_key_info),)

    def validate_key(self, key: SimKey) -> None:
        if decoded_secret(key.secret) is None:
            raise ValueError(f"kraken key {key.key_id!r}: the secret must be Base64, as Kraken issues it")

    # --- endpoints --------------------------------------------------------------------------------

    async def get_api_key_info(self, request: web.Request) -> web.StreamResponse:
        """Get API Key Info: the signing key's name, permissions and restrictions."""
        principal, nonce = await self._signed(request)
        now = int(time.time())
        created = self.state.created_ms // 1000
        return kraken_result(
            {
                "apiKeyName": principal.record.key.key_id if principal.record else "master",
                "apiKey": principal.api_key,
                "nonce": str(nonce),
                "nonceWindow": 0,
                "permissions": _permissions(principal.permissions),
                "iban": "AA00 SIMU LATE DKEY",
                "validUntil": "0",
                "queryFrom": "0",
                "queryTo": "0",
                "createdTime": str(created),
                "modifiedTime": str(created),
                "ipAllowlist": [],
                "lastUsed": str(now),
            }
        )

    # --- shared faults in Kraken's words ----------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        return kraken_error(RATE_LIMITED)

    def render_banned(self, retry_after: int) -> web.Response:
        return kraken_error(LOCKOUT)

    # --- authentication ---------------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[Principal, int]:
        """Check a private request as Kraken does; the caller and the nonce it used."""
        api_key = request.headers.get("API-Key", "")
        principal = self.state.authenticating(api_key) if api_key else None
        if principal is None:
            raise _refuse(INVALID_KEY)

        raw_body = await request.text()
        nonce_text = _nonce(raw_body, request.content_type)
        signature = request.headers.get("API-Sign", "")
        secret = decoded_secret(principal.secret)
        # the URI path as requested, from /0/private on
        uri_path = request.rel_url.raw_path
        expected = sign(secret, uri_path, nonce_text, raw_body) if secret is not None else ""
        if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _refuse(INVALID_SIGNATURE)
        if self.state.is_ip_blocked(principal):
            raise _refuse(PERMISSION_DENIED)

        if not (nonce_text.isascii() and nonce_text.isdigit()) or int(nonce_text) >= 2**64:
            raise _refuse(INVALID_NONCE)
        nonce = int(nonce_text)
        if nonce <= self._nonces.get(principal.api_key, 0):
            raise _refuse(INVALID_NONCE)
        self._nonces[principal.api_key] = nonce
        return principal, nonce


def _nonce(raw_body: str, content_type: str) -> str:
    """The ``nonce`` payload parameter as sent (empty if there is none), from a form or JSON body."""
    if content_type == "application/json":
        try:
            payload = json.loads(raw_body) if raw_body else {}
        except ValueError:
            return ""
        value = payload.get("nonce") if isinstance(payload, dict) else None
        return str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return dict(parse_qsl(raw_body, keep_blank_values=True)).get("nonce", "")


def _permissions(granted: frozenset[str]) -> list[str]:
    words: list[str] = []
    if "read" in granted:
        words += ["query-funds", "query-open-trades"]
    if "trade" in granted:
        words.append("modify-trades")
    if "withdraw" in granted or "transfer" in granted:
        words.append("withdraw-funds")
    return words
