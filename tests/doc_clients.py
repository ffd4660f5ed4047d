"""Minimal clients for each venue, written from the venue's own documentation (not from ccxt, nor from
keyrevoke's adapters): aiohttp, hmac, hashlib, base64 and, for Coinbase's ES256 tokens, cryptography.

Each client signs the path it sends, as the venue documents, and knows two calls: the key's own read
(``probe``) and, where the venue has one, the master's delete of a sub-account key (``revoke``). The
fidelity tests run them against the simulator: what these clients get is what a client written by
anyone from the same pages would get.

The recipes, by venue:

- Binance, "Request Security" (developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security):
  ``X-MBX-APIKEY``; ``signature`` = hex HMAC-SHA256 of the query string (totalParams), secret as key.
- Bybit, "Integration Guidance" (bybit-exchange.github.io/docs/v5/guide): ``X-BAPI-API-KEY``,
  ``X-BAPI-TIMESTAMP`` (ms), ``X-BAPI-RECV-WINDOW``, ``X-BAPI-SIGN`` = hex HMAC-SHA256 of
  ``timestamp + api_key + recv_window + (query string | raw JSON body)``.
- OKX, "REST Authentication" (www.okx.com/docs-v5/en/#overview-rest-authentication): ``OK-ACCESS-SIGN``
  = Base64 HMAC-SHA256 of ``timestamp + METHOD + requestPath + body`` (ISO 8601 timestamp with
  milliseconds); ``OK-ACCESS-PASSPHRASE`` in clear.
- KuCoin, "Authentication" (www.kucoin.com/docs-new/authentication): ``KC-API-SIGN`` = Base64
  HMAC-SHA256 of ``timestamp + METHOD + endpoint + body``, the endpoint with its query string as it is
  before URL encoding; ``KC-API-PASSPHRASE`` = Base64 HMAC-SHA256 of the passphrase with the secret,
  and ``KC-API-KEY-VERSION`` says so.
- Gate, "APIv4 signed request requirements" (www.gate.io/docs/developers/apiv4/en/#authentication):
  ``SIGN`` = hex HMAC-SHA512 of ``METHOD\\nURL\\nquery\\nhex(SHA512(body))\\nTimestamp``, the URL being
  the path requested (``/api/v4/...``), as Gate's own Python sample signs ``prefix + url``.
- MEXC, "Authentication" (www.mexc.com/api-docs/spot-v3/general-info#authentication): as Binance, with
  ``X-MEXC-APIKEY``, the signature lowercase hex.
- Kraken, "Spot REST Authentication" (docs.kraken.com/api/docs/guides/spot-rest-auth): ``API-Sign`` =
  Base64 HMAC-SHA512 of ``URI path + SHA256(nonce + POST data)``, keyed with the Base64-decoded secret.
- Coinbase, "JWT Authentication" (docs.cdp.coinbase.com/get-started/authentication/jwt-authentication):
  ``Authorization: Bearer`` an ES256 JWT with header ``kid`` (the key name) and ``nonce``, claims
  ``sub``, ``iss`` "cdp", ``nbf``, ``exp`` (two minutes on) and ``uri`` = ``METHOD host/path``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from yarl import URL


@dataclass(frozen=True, repr=False)
class Creds:
    """An API key as its owner has it."""

    api_key: str
    secret: str
    passphrase: str = ""


@dataclass(frozen=True)
class Reply:
    """What the venue answered: the HTTP status, and the body (JSON if it is JSON, else its text)."""

    status: int
    body: Any


async def _send(
    http: aiohttp.ClientSession, method: str, url: str | URL, headers: dict[str, str], data: str | None = None
) -> Reply:
    async with http.request(method, url, headers=headers, data=data) as response:
        text = await response.text()
    try:
        body: Any = json.loads(text) if text else ""
    except ValueError:
        body = text
    return Reply(response.status, body)


def _as_sent(base: str, path: str) -> str:
    """The path as the request line carries it: below ``base``'s own path, if it has one.

    Every venue that signs the path signs this one, the path the server receives.
    """
    return urlsplit(base).path.rstrip("/") + path


def _ms() -> str:
    return str(int(time.time() * 1000))


def _hex_sha256(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _b64_sha256(secret: str, message: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


# --- Binance ----------------------------------------------------------------------------------------


async def binance_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get API Key Permission (USER_DATA): ``GET /sapi/v1/account/apiRestrictions``."""
    return await _binance_signed(http, base, "GET", "/sapi/v1/account/apiRestrictions", {}, key)


async def binance_revoke(http: aiohttp.ClientSession, base: str, master: Creds, key: Creds, account: str) -> Reply:
    """Delete Sub Account Api Key: ``DELETE /sapi/v1/broker/subAccountApi``, by the broker."""
    params = {"subAccountId": account, "subAccountApiKey": key.api_key}
    return await _binance_signed(http, base, "DELETE", "/sapi/v1/broker/subAccountApi", params, master)


async def _binance_signed(
    http: aiohttp.ClientSession, base: str, method: str, path: str, params: dict[str, str], who: Creds
) -> Reply:
    query = urlencode({**params, "timestamp": _ms(), "recvWindow": "5000"})
    signature = _hex_sha256(who.secret, query)
    url = URL(f"{base}{path}?{query}&signature={signature}", encoded=True)
    return await _send(http, method, url, {"X-MBX-APIKEY": who.api_key})


# --- Bybit ------------------------------------------------------------------------------------------


async def bybit_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get API Key Information: ``GET /v5/user/query-api``."""
    return await _bybit_signed(http, base, "GET", "/v5/user/query-api", None, key)


async def bybit_revoke(http: aiohttp.ClientSession, base: str, master: Creds, key: Creds, account: str) -> Reply:
    """Delete Sub API Key: ``POST /v5/user/delete-sub-api`` with the sub key, by the master."""
    return await _bybit_signed(http, base, "POST", "/v5/user/delete-sub-api", {"apikey": key.api_key}, master)


async def bybit_delete_self(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Delete Master API Key: ``POST /v5/user/delete-api``, by the key itself."""
    return await _bybit_signed(http, base, "POST", "/v5/user/delete-api", {}, key)


async def _bybit_signed(
    http: aiohttp.ClientSession, base: str, method: str, path: str, body: dict[str, str] | None, who: Creds
) -> Reply:
    timestamp, recv_window = _ms(), "5000"
    payload = json.dumps(body, separators=(",", ":")) if body is not None else ""
    headers = {
        "X-BAPI-API-KEY": who.api_key,
        "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": recv_window,
        "X-BAPI-SIGN": _hex_sha256(who.secret, timestamp + who.api_key + recv_window + payload),
        "Content-Type": "application/json",
    }
    return await _send(http, method, f"{base}{path}", headers, payload or None)


# --- OKX --------------------------------------------------------------------------------------------


async def okx_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get account configuration: ``GET /api/v5/account/config``."""
    return await _okx_signed(http, base, "GET", "/api/v5/account/config", None, key)


async def okx_revoke(http: aiohttp.ClientSession, base: str, master: Creds, key: Creds, account: str) -> Reply:
    """Delete the API Key of sub-accounts: ``POST /api/v5/users/subaccount/delete-apikey``, by the master."""
    body = {"subAcct": account, "apiKey": key.api_key}
    return await _okx_signed(http, base, "POST", "/api/v5/users/subaccount/delete-apikey", body, master)


async def _okx_signed(
    http: aiohttp.ClientSession, base: str, method: str, path: str, body: dict[str, str] | None, who: Creds
) -> Reply:
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = json.dumps(body) if body is not None else ""
    headers = {
        "OK-ACCESS-KEY": who.api_key,
        "OK-ACCESS-SIGN": _b64_sha256(who.secret, timestamp + method + _as_sent(base, path) + payload),
        "OK-ACCESS-TIMESTAMP": timestamp,
        "OK-ACCESS-PASSPHRASE": who.passphrase,
        "Content-Type": "application/json",
    }
    return await _send(http, method, f"{base}{path}", headers, payload or None)


# --- KuCoin -----------------------------------------------------------------------------------------


async def kucoin_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get API Key Info: ``GET /api/v1/user/api-key``."""
    return await _kucoin_signed(http, base, "GET", "/api/v1/user/api-key", {}, key)


async def kucoin_revoke(http: aiohttp.ClientSession, base: str, master: Creds, key: Creds, account: str) -> Reply:
    """Delete sub-account API: ``DELETE /api/v1/sub/api-key``, by the master, with the key's passphrase."""
    params = {"apiKey": key.api_key, "subName": account, "passphrase": key.passphrase}
    return await _kucoin_signed(http, base, "DELETE", "/api/v1/sub/api-key", params, master)


async def kucoin_plain_passphrase_probe(
    http: aiohttp.ClientSession, base: str, key: Creds, version: str | None
) -> Reply:
    """The probe with the passphrase in clear, as only a version 1 key may send it."""
    return await _kucoin_signed(http, base, "GET", "/api/v1/user/api-key", {}, key, plain=True, version=version)


async def _kucoin_signed(
    http: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    params: dict[str, str],
    who: Creds,
    *,
    plain: bool = False,
    version: str | None = "3",
) -> Reply:
    timestamp = _ms()
    # signed as it stands before URL encoding; sent encoded
    query = "&".join(f"{name}={value}" for name, value in params.items())
    endpoint = _as_sent(base, path) + (f"?{query}" if query else "")
    headers = {
        "KC-API-KEY": who.api_key,
        "KC-API-SIGN": _b64_sha256(who.secret, timestamp + method + endpoint),
        "KC-API-TIMESTAMP": timestamp,
        "KC-API-PASSPHRASE": who.passphrase if plain else _b64_sha256(who.secret, who.passphrase),
    }
    if version is not None:
        headers["KC-API-KEY-VERSION"] = version
    sent = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())
    url = URL(f"{base}{path}" + (f"?{sent}" if sent else ""), encoded=True)
    return await _send(http, method, url, headers)


# --- Gate -------------------------------------------------------------------------------------------


async def gate_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get account detail: ``GET /api/v4/account/detail``."""
    return await _gate_signed(http, base, "GET", "/api/v4/account/detail", key)


async def gate_revoke(http: aiohttp.ClientSession, base: str, master: Creds, key: Creds, account: str) -> Reply:
    """Delete API key of the sub-account: ``DELETE /api/v4/sub_accounts/{user_id}/keys/{key}``, by the main account."""
    return await _gate_signed(http, base, "DELETE", f"/api/v4/sub_accounts/{account}/keys/{key.api_key}", master)


async def _gate_signed(http: aiohttp.ClientSession, base: str, method: str, url: str, who: Creds) -> Reply:
    timestamp = str(time.time())
    hashed_payload = hashlib.sha512(b"").hexdigest()
    message = f"{method}\n{_as_sent(base, url)}\n\n{hashed_payload}\n{timestamp}"
    sign = hmac.new(who.secret.encode(), message.encode(), hashlib.sha512).hexdigest()
    headers = {"KEY": who.api_key, "Timestamp": timestamp, "SIGN": sign, "Accept": "application/json"}
    return await _send(http, method, f"{base}{url}", headers)


# --- MEXC -------------------------------------------------------------------------------------------


async def mexc_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Account Information: ``GET /api/v3/account``."""
    return await _mexc_signed(http, base, "GET", "/api/v3/account", {}, key)


async def mexc_revoke(http: aiohttp.ClientSession, base: str, master: Creds, key: Creds, account: str) -> Reply:
    """Delete the APIKey of a sub-account: ``DELETE /api/v3/sub-account/apiKey``, by the master account."""
    params = {"subAccount": account, "apiKey": key.api_key}
    return await _mexc_signed(http, base, "DELETE", "/api/v3/sub-account/apiKey", params, master)


async def _mexc_signed(
    http: aiohttp.ClientSession, base: str, method: str, path: str, params: dict[str, str], who: Creds
) -> Reply:
    query = urlencode({**params, "timestamp": _ms()})
    signature = _hex_sha256(who.secret, query)
    url = URL(f"{base}{path}?{query}&signature={signature}", encoded=True)
    return await _send(http, method, url, {"X-MEXC-APIKEY": who.api_key, "Content-Type": "application/json"})


# --- Kraken -----------------------------------------------------------------------------------------


async def kraken_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get API Key Info: ``POST /0/private/GetApiKeyInfo``."""
    path = "/0/private/GetApiKeyInfo"
    nonce = str(time.time_ns())
    data = urlencode({"nonce": nonce})
    message = _as_sent(base, path).encode() + hashlib.sha256((nonce + data).encode()).digest()
    signature = hmac.new(base64.b64decode(key.secret), message, hashlib.sha512).digest()
    headers = {
        "API-Key": key.api_key,
        "API-Sign": base64.b64encode(signature).decode(),
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    return await _send(http, "POST", f"{base}{path}", headers, data)


# --- Coinbase ---------------------------------------------------------------------------------------


async def coinbase_probe(http: aiohttp.ClientSession, base: str, key: Creds) -> Reply:
    """Get API Key Permissions: ``GET /api/v3/brokerage/key_permissions``, with a JWT for that request."""
    path = "/api/v3/brokerage/key_permissions"
    host = urlsplit(base).netloc
    token = coinbase_jwt(key, f"GET {host}{_as_sent(base, path)}")
    return await _send(http, "GET", f"{base}{path}", {"Authorization": f"Bearer {token}"})


def coinbase_jwt(key: Creds, uri: str) -> str:
    """The ES256 JWT of Coinbase's samples (PyJWT's ``jwt.encode(..., algorithm="ES256", headers=...)``)."""
    secret = key.secret
    private = (
        serialization.load_pem_private_key(secret.encode(), None)
        if secret.startswith("-----BEGIN")
        else serialization.load_der_private_key(base64.b64decode(secret), None)
    )
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ValueError("a Coinbase CDP key for Advanced Trade is an EC (ES256) key")
    now = int(time.time())
    header = {"alg": "ES256", "kid": key.api_key, "nonce": secrets.token_hex(), "typ": "JWT"}
    claims = {"sub": key.api_key, "iss": "cdp", "nbf": now, "exp": now + 120, "uri": uri}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- by venue ---------------------------------------------------------------------------------------

Probe = Callable[[aiohttp.ClientSession, str, Creds], Awaitable[Reply]]
Revoke = Callable[[aiohttp.ClientSession, str, Creds, Creds, str], Awaitable[Reply]]

#: each venue's probe
PROBES: dict[str, Probe] = {
    "binance": binance_probe,
    "bybit": bybit_probe,
    "okx": okx_probe,
    "kucoin": kucoin_probe,
    "gate": gate_probe,
    "mexc": mexc_probe,
    "kraken": kraken_probe,
    "coinbase": coinbase_probe,
}
#: each venue's master delete of a sub-account key (Kraken and Coinbase have none)
REVOKES: dict[str, Revoke] = {
    "binance": binance_revoke,
    "bybit": bybit_revoke,
    "okx": okx_revoke,
    "kucoin": kucoin_revoke,
    "gate": gate_revoke,
    "mexc": mexc_revoke,
}
