"""Coinbase's Advanced Trade API (v3), as far as keyrevoke uses it: a key reading its own permissions.

Coinbase offers no call that deletes a CDP API key: a leaked Coinbase key is revoked by Coinbase's
security team (see ``VenueSimulator.revoke_by_exchange``), and this module only answers the probe.

Follows Coinbase's own documentation (docs.cdp.coinbase.com):

- "API Key Authentication" (coinbase-app/authentication-authorization/api-key-authentication): CDP
  secret API keys; for the Coinbase App and Advanced Trade APIs the key must be ECDSA ("Ed25519
  (EdDSA) keys are NOT supported. You must use ES256"). A key is named
  ``organizations/{org_id}/apiKeys/{key_id}`` and its secret is a PEM EC private key.
- "JWT Authentication" (get-started/authentication/jwt-authentication): every request carries
  ``Authorization: Bearer <JWT>``, a token signed with the key's private key that names the request
  it is for (``uri`` = ``METHOD host/path``, without the query string) and "expires after 2 minutes,
  after which all requests are unauthenticated".
- "Get API Key Permissions" (api-reference/advanced-trade-api/rest-api/data-api/get-api-key-permissions):
  ``GET /api/v3/brokerage/key_permissions`` answers ``can_view``, ``can_trade``, ``can_transfer``,
  ``portfolio_uuid`` and ``portfolio_type`` for the calling key.
- "API Scopes and Permissions" (coinbase-app/authentication-authorization/authorization): an API key
  holds View, Trade and Transfer ("send and receive funds, on and off platform").
- "Rate Limiting" (coinbase-app/api-architecture/rate-limiting): over the limit, HTTP 429 with
  ``{"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}``.

The token verified here is exactly the one ccxt 4.5.90 makes for a CDP key whose secret is a PEM EC
key (``coinbase.create_auth_token``): header ``{"alg": "ES256", "typ": "JWT", "kid": <key name>,
"nonce": <random hex>}``; claims ``aud`` ``["retail_rest_api_proxy"]``, ``iss`` ``coinbase-cloud``,
``sub`` (the key name), ``nbf`` = ``iat`` = now, ``exp`` = now + 120 and ``uri``; the signature is
raw ``r || s`` (64 bytes, base64url), ES256 over ``header.claims``. Coinbase's own samples set ``iss``
to ``cdp``; both issuers are accepted.

Decided here, because the documentation does not say: every authentication failure (no or malformed
token, unknown or deleted key, a signature that does not verify, a token for another request, one
outside its lifetime, an address outside the key's allow-list) is answered the same way, HTTP 401 with
the text ``Unauthorized``, as Coinbase is seen to answer them; a token may start up to 30 seconds in
the future; the uri's host is the one the request was sent to, and since the simulator serves plain
HTTP and ccxt strips only ``https://`` from the uri, a leading ``http://`` is accepted; token nonces
are not tracked for replays; Coinbase documents no ban, so a ban is the front door's HTTP 403 page.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from venuesim.faults import FaultGate
from venuesim.protocol import Endpoint, Refusal, VenueProtocol
from venuesim.state import Principal, SimKey, VenueState
from venuesim.stats import SimStats

#: the prefix of every Advanced Trade path
API = "/api/v3/brokerage"
#: "Your JWT expires after 2 minutes"
TOKEN_LIFETIME_SECONDS = 120
#: how far in the future a token's ``nbf`` may be
CLOCK_LEEWAY_SECONDS = 30
#: issuers of the tokens Coinbase accepts: its own samples' and ccxt's
ISSUERS = frozenset({"cdp", "coinbase-cloud"})


def private_key(secret: str) -> ec.EllipticCurvePrivateKey | None:
    """The P-256 private key of a CDP secret: its PEM (newlines may be escaped as ``\\n``) or the
    base64 DER inside that PEM. None for anything else."""
    try:
        if secret.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(secret.replace("\\n", "\n").encode(), password=None)
        else:
            key = serialization.load_der_private_key(base64.b64decode(secret, validate=True), password=None)
    except (ValueError, TypeError, binascii.Error):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    return None


def _unauthorized() -> Refusal:
    return Refusal(web.Response(status=401, text="Unauthorized", content_type="text/plain"))


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class CoinbaseProtocol(VenueProtocol):
    """Coinbase Advanced Trade v3: the private read a key uses to learn its own permissions."""

    name = "coinbase"

    def __init__(self, state: VenueState, gate: FaultGate, stats: SimStats) -> None:
        super().__init__(state, gate, stats)
        #: the public key Coinbase holds for each key name
        self._public: dict[str, ec.EllipticCurvePublicKey] = {}

    def endpoints(self) -> Iterable[Endpoint]:
        return (Endpoint("GET", f"{API}/key_permissions", self.key_permissions),)

    def validate_key(self, key: SimKey) -> None:
        if private_key(key.secret) is None:
            raise ValueError(f"coinbase key {key.key_id!r}: the secret must be an EC P-256 private key (ES256)")

    # --- endpoints --------------------------------------------------------------------------------

    async def key_permissions(self, request: web.Request) -> web.StreamResponse:
        """Get API Key Permissions: what the calling key may do, and its portfolio."""
        principal = self._signed(request)
        granted = principal.permissions
        portfolio = uuid.uuid5(
            uuid.NAMESPACE_URL, f"coinbase:{principal.account_name or principal.account_id or principal.api_key}"
        )
        return web.json_response(
            {
                "can_view": "read" in granted,
                "can_trade": "trade" in granted,
                "can_transfer": "transfer" in granted or "withdraw" in granted,
                "portfolio_uuid": str(portfolio),
                "portfolio_type": "DEFAULT",
            }
        )

    # --- shared faults in Coinbase's words --------------------------------------------------------

    def render_rate_limited(self, retry_after: int) -> web.Response:
        body = {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
        return web.json_response(body, status=429)

    # --- authentication ---------------------------------------------------------------------------

    def _signed(self, request: web.Request) -> Principal:
        """Check the request's bearer token as Coinbase does; the caller."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        parts = token.split(".")
        if scheme != "Bearer" or len(parts) != 3:
            raise _unauthorized()
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, binascii.Error):
            raise _unauthorized() from None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "ES256":
            raise _unauthorized()
        name = header.get("kid")
        principal = self.state.authenticating(name) if isinstance(name, str) and name else None
        if principal is None or claims.get("sub") != name:
            raise _unauthorized()
        if not self._verifies(principal, f"{parts[0]}.{parts[1]}".encode(), signature):
            raise _unauthorized()
        if not self._current(claims) or claims.get("iss") not in ISSUERS:
            raise _unauthorized()
        uri = claims.get("uri")
        expected = f"{request.method} {request.host}{request.rel_url.raw_path}"
        if not isinstance(uri, str) or uri.replace(" http://", " ", 1) != expected:
            raise _unauthorized()
        if self.state.is_ip_blocked(principal):
            raise _unauthorized()
        return principal

    def _verifies(self, principal: Principal, signed: bytes, signature: bytes) -> bool:
        public = self._public.get(principal.api_key)
        if public is None:
            key = private_key(principal.secret)
            if key is None:
                return False
            public = self._public[principal.api_key] = key.public_key()
        if len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            public.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def _current(claims: dict[str, Any]) -> bool:
        """The token's lifetime is Coinbase's (at most two minutes) and covers the present."""
        not_before, expires = claims.get("nbf"), claims.get("exp")
        if not isinstance(not_before, int) or not isinstance(expires, int):
            return False
        now = time.time()
        return (
            0 < expires - not_before <= TOKEN_LIFETIME_SECONDS
            and not_before <= now + CLOCK_LEEWAY_SECONDS
            and now < expires
        )
