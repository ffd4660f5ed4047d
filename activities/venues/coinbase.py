"""Coinbase: probe a key by reading its own permissions; Coinbase has no API that revokes a key.

Follows Coinbase's documentation (docs.cdp.coinbase.com):

- probe: "Get API Key Permissions", ``GET /api/v3/brokerage/key_permissions``
  (api-reference/advanced-trade-api/rest-api/data-api/get-api-key-permissions), Advanced Trade,
  signed by the key itself: ``can_view``, ``can_trade``, ``can_transfer`` (View, Trade and Transfer,
  "send and receive funds, on and off platform", in "API Scopes and Permissions",
  coinbase-app/authentication-authorization/authorization), ``portfolio_uuid``, ``portfolio_type``;
- revoke: none. CDP API keys are deleted in the developer portal by their owner, or by Coinbase's
  security team; no API call deletes one. ``revoke`` therefore refuses, and the batch escalates the
  key (the escalation packet goes to Coinbase, the commander confirms when Coinbase has acted);
- signing: "API Key Authentication" (coinbase-app/authentication-authorization/api-key-authentication)
  and "JWT Authentication" (get-started/authentication/jwt-authentication): a CDP secret API key
  named ``organizations/{org_id}/apiKeys/{key_id}`` whose secret is an EC P-256 private key (ECDSA is
  required: "Ed25519 (EdDSA) keys are NOT supported"); each request carries ``Authorization: Bearer``
  and an ES256 JWT naming the request, valid for two minutes. ccxt 4.5.90 makes that token itself for
  a key whose secret is a PEM EC key (``coinbase.create_auth_token``); a legacy HMAC secret or an
  Ed25519 secret would make ccxt sign differently, and is refused here before any call;
- answers: HTTP 401 ``Unauthorized`` for any authentication failure; "Rate Limiting"
  (coinbase-app/api-architecture/rate-limiting): HTTP 429 with ``rate_limit_exceeded``, no Retry-After
  (the Advanced Trade private limit is counted per second).

Secrets are accepted as the PEM Coinbase hands out (newlines may be escaped as ``\\n``) or as the
base64 DER between the PEM's armour lines, so that a secret fits an inventory cell without spaces or
line breaks; either way ccxt is given the PEM.

Coinbase answers a deleted key, a wrong signature and an expired token with the same HTTP 401: the
answer alone cannot tell a dead key from a broken signature. So the probe checks every token it
sends against the key's own public key (derived from the secret it holds) before reading the
answer: a 401 to a token that verifies is a rejected key (``accepted=False``), a 401 to one that
does not is a refused signature (``RevokeRefused``), and never passes for a key Coinbase deleted.
What the check cannot see, a secret that belongs to another key name or a worker clock more than a
little off, fails the key's baseline probe as well, and keyrevoke confirms no key whose baseline
probe failed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from activities.venues.answers import AnswerLog
from activities.venues.base import Credentials, KeyTarget, NoRevocationApi, ProbeAnswer, Rejected, key_works
from keyrevoke.errors import RevokeRefused, VenueUnavailable

#: the Advanced Trade private limit is counted per second, and Coinbase sends no Retry-After
RATE_WINDOW_SECONDS = 1.0

#: the raw answers behind this module's ccxt calls; Coinbase's error label, when it sends one, is in ``error``
ANSWERS = AnswerLog("coinbase", "error")


class CoinbaseAdapter(NoRevocationApi):
    """Coinbase Advanced Trade through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "coinbase"
    answers = ANSWERS
    # 429 is the rate limit; a 403 without Coinbase's own error body is the front door's ban
    rate_window = RATE_WINDOW_SECONDS

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own permissions: it authenticates, or Coinbase rejects it."""
        key = private_key(target.credentials.secret)
        if key is None:
            raise RevokeRefused(self.venue, "the key's secret is not an EC P-256 private key (Coinbase needs ES256)")
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
        tokens = TokenCheck(key.public_key(), target.credentials.api_key)

        async def key_permissions(exchange: Any) -> Any:
            exchange.sign = tokens.around(exchange.sign)
            return await exchange.v3PrivateGetBrokerageKeyPermissions()

        response = await self.call_as_key(Credentials(target.credentials.api_key, pem), key_permissions)
        if isinstance(response, Rejected):
            rejected = _rejected(response.error)
            if not tokens.all_verified:
                refusal = f"signature refused: {rejected}; the token sent does not verify with the key's own key"
                raise RevokeRefused(self.venue, refusal) from None
            return ProbeAnswer(accepted=False, detail=rejected)
        if not isinstance(response, dict) or not isinstance(response.get("can_view"), bool):
            raise VenueUnavailable(self.venue, "unexpected key_permissions answer")
        return key_works("key_permissions", _permissions(response), portfolio_type=response.get("portfolio_type"))


class TokenCheck:
    """Verifies each bearer token ccxt signs for one key against that key's public key."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, key_name: str) -> None:
        self.public_key = public_key
        self.key_name = key_name
        self.results: list[bool] = []

    @property
    def all_verified(self) -> bool:
        """Every token sent so far verified (and at least one was sent)."""
        return bool(self.results) and all(self.results)

    def around(self, sign: Callable[..., Any]) -> Callable[..., Any]:
        """``sign`` (ccxt's, or whatever the object signs with), noting whether each token verifies."""

        def checked(*args: Any, **kwargs: Any) -> Any:
            request = sign(*args, **kwargs)
            headers = request.get("headers") if isinstance(request, dict) else None
            authorization = headers.get("Authorization") if isinstance(headers, dict) else None
            self.results.append(self.verifies(authorization if isinstance(authorization, str) else ""))
            return request

        return checked

    def verifies(self, authorization: str) -> bool:
        """An ES256 bearer token for this key name whose signature the key's public key accepts."""
        scheme, _, token = authorization.partition(" ")
        parts = token.split(".")
        if scheme != "Bearer" or len(parts) != 3:
            return False
        try:
            header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, binascii.Error):
            return False
        if not isinstance(header, dict) or not isinstance(claims, dict) or len(signature) != 64:
            return False
        if header.get("alg") != "ES256" or header.get("kid") != self.key_name or claims.get("sub") != self.key_name:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            self.public_key.verify(
                encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return False
        return True


def private_key(secret: str) -> ec.EllipticCurvePrivateKey | None:
    """The P-256 private key of a CDP secret (its PEM, or the base64 DER inside it); None otherwise."""
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


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _rejected(error: Exception) -> str:
    """``rejected: AuthenticationError (HTTP 401)``: the class and the answer's status or label."""
    answer = ANSWERS.last()
    if answer is not None and answer.code is not None:
        return ANSWERS.rejected(error)
    status = f" (HTTP {answer.status})" if answer is not None else ""
    return f"rejected: {type(error).__name__}{status}"


def _permissions(answer: Mapping[str, Any]) -> tuple[str, ...]:
    found = ["read"]  # key_permissions answered: the key reads, at least its own permissions
    if answer.get("can_trade") is True:
        found.append("trade")
    if answer.get("can_transfer") is True:  # Transfer sends funds off the platform too
        found += ["withdraw", "transfer"]
    return tuple(found)
