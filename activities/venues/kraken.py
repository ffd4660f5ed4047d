"""Kraken: probe a key by reading its own information; Kraken has no API that revokes a key.

Follows Kraken's Spot REST documentation (docs.kraken.com):

- probe: "Get API Key Info", ``POST /0/private/GetApiKeyInfo``
  (api-reference/account-data/get-api-key-info), signed by the key itself; it needs no permission, so
  every valid key answers, with its ``permissions`` (``query-funds``, ``withdraw-funds``,
  ``query-open-trades``, ``modify-trades``, ...). The answer also holds the key itself: only the
  permissions leave this module;
- revoke: none. Kraken documents no call that deletes an API key, its own or another's: keys are
  deleted by the account holder in the web interface, or in bulk by Kraken's security team. ``revoke``
  therefore refuses, and the batch escalates the key (the escalation packet goes to Kraken, and the
  commander confirms when Kraken has acted; probes then see the keys rejected);
- signing: "Spot REST Authentication" (api/docs/guides/spot-rest-auth): ``API-Key``, and ``API-Sign``
  = Base64 HMAC-SHA512 of URI path + SHA256(nonce + POST data) keyed with the Base64-decoded secret;
  the ``nonce`` must always increase per key;
- answers: "Errors" (exchange/guides/general/errors): HTTP 200 with ``{"error": [...]}``:
  ``EAPI:Invalid key`` (missing, malformed, deleted or revoked key), ``EAPI:Invalid signature``,
  ``EAPI:Invalid nonce``, ``EGeneral:Temporary lockout`` (after repeated invalid keys, "typically a
  few minutes"), ``EGeneral:Permission denied``; "Spot REST Rate Limits"
  (api/docs/guides/spot-rest-ratelimits): ``EAPI:Rate limit exceeded`` once the key's call counter
  is full (Starter tier: 15, decaying by 0.33 per second), ``EService:Throttled: <unix time>`` for
  too many concurrent requests.

ccxt maps ``EAPI:Invalid key`` to ``AuthenticationError``, ``EGeneral:Permission denied`` to
``PermissionDenied``, ``EAPI:Invalid nonce`` to ``InvalidNonce``, and both ``EAPI:Rate limit
exceeded`` and ``EGeneral:Temporary lockout`` to ``DDoSProtection``; Kraken's own error string
decides between a rate limit and a lockout. ``EAPI:Invalid signature`` is a plain ``ExchangeError``
in ccxt: the probe reports it as a refused signature (``RevokeRefused``), never as a rejected key, so
a broken signature cannot pass for a key Kraken has deleted. Kraken's support article "Common causes
of invalid key error" says a signature that does not match the POST data may also be answered
``EAPI:Invalid key``; if Kraken answers so, only keyrevoke's rule that a rejection confirms nothing
unless the key's baseline probe had worked (a broken signature fails that probe too) keeps it apart.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import ccxt

from activities.venues.answers import AnswerLog, until
from activities.venues.base import KeyTarget, NoRevocationApi, ProbeAnswer, ip_binding, key_works, member
from keyrevoke.errors import RateLimited, RevokeRefused, VenueBanned, VenueError

INVALID_SIGNATURE = "EAPI:Invalid signature"
RATE_LIMIT_EXCEEDED = "EAPI:Rate limit exceeded"
THROTTLED = "EService:Throttled"
#: the Starter tier's call counter loses one call every 3 seconds (0.33 per second)
COUNTER_DECAY_SECONDS = 3.0
#: "Wait for the lockout to expire (typically a few minutes)"
LOCKOUT_SECONDS = 180.0

TRADE_PERMISSIONS = frozenset({"modify-trades", "cancel-trades"})
#: Kraken moves funds between its own wallets under the withdraw permission
WITHDRAW_PERMISSIONS = frozenset({"withdraw-funds"})


class KrakenAnswers(AnswerLog):
    """The answer log, with Kraken's first error string as the venue's code (``error`` is a list)."""

    def code_of(self, body: str) -> str | None:
        return first_error(body)


def first_error(body: str) -> str | None:
    """The first string of a Kraken answer's ``error`` list; None if there is none."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    errors = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], str):
        return errors[0]
    return None


#: the raw answers behind this module's ccxt calls; Kraken's error string is in ``error``
ANSWERS = KrakenAnswers("kraken", "error")


class _NonceFloor:
    """The highest nonce this process has signed with, handed on to every object a call gets.

    ccxt keeps its last nonce per object (milliseconds, then one more each call), and a pooled object
    comes back with that reset; two calls of one key within the same millisecond on different objects
    would share a nonce and Kraken would refuse the second. Each call starts above every nonce used
    before it here.
    """

    def __init__(self) -> None:
        self.value = 0

    def seed(self, exchange: Any) -> None:
        exchange.options["lastNonce"] = max(self.value, int(exchange.options.get("lastNonce") or 0))

    def keep(self, exchange: Any) -> None:
        self.value = max(self.value, int(exchange.options.get("lastNonce") or 0))


NONCES = _NonceFloor()


class KrakenAdapter(NoRevocationApi):
    """Kraken Spot REST through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "kraken"
    answers = ANSWERS
    rate_window = COUNTER_DECAY_SECONDS

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's own information: it authenticates, or Kraken rejects it."""
        if not _is_base64(target.credentials.secret):
            raise RevokeRefused(self.venue, "the key's secret is not Base64, as every Kraken secret is")
        # AuthenticationError rejects the key: PermissionDenied (an address outside the allow-list) too
        return await self.probe_as_key(target, _get_api_key_info, "GetApiKeyInfo", _read)

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        code = ANSWERS.code()
        if code == INVALID_SIGNATURE:
            # the key exists and our signature is wrong: nothing is known about the key
            return RevokeRefused(self.venue, f"signature refused: {ANSWERS.rejected(error)}")
        if code == RATE_LIMIT_EXCEEDED:
            return RateLimited(self.venue, f"{type(error).__name__} (error {code})", COUNTER_DECAY_SECONDS)
        if isinstance(code, str) and code.startswith(THROTTLED):
            retry_after = until(code.rpartition(":")[2].strip())
            return RateLimited(self.venue, f"{type(error).__name__} (error {THROTTLED})", retry_after or 1.0)
        if isinstance(error, ccxt.DDoSProtection):  # EGeneral:Temporary lockout and its kin
            return VenueBanned(self.venue, ANSWERS.rejected(error).removeprefix("rejected: "), LOCKOUT_SECONDS)
        # an HTTP 429 or 403 page from the front door, not Kraken's API, then ccxt's class
        return super()._classify(error, exchange)


async def _get_api_key_info(exchange: Any) -> Any:
    """GetApiKeyInfo, its nonces above every nonce this process has signed with."""
    NONCES.seed(exchange)
    try:
        return await exchange.privatePostGetApiKeyInfo()
    finally:
        NONCES.keep(exchange)


def _read(response: Any) -> ProbeAnswer | None:
    result = member(response, "result")
    if result is None:
        return None
    granted = result.get("permissions")
    permissions = _permissions(granted if isinstance(granted, list) else [])
    return key_works("GetApiKeyInfo", permissions, ipAllowlist=ip_binding(result.get("ipAllowlist")))


def _is_base64(secret: str) -> bool:
    try:
        return bool(base64.b64decode(secret, validate=True))
    except (binascii.Error, ValueError):
        return False


def _permissions(granted: Sequence[Any]) -> tuple[str, ...]:
    words = {str(word) for word in granted}
    found = ["read"]  # GetApiKeyInfo answered: the key reads, at least its own information
    if words & TRADE_PERMISSIONS:
        found.append("trade")
    if words & WITHDRAW_PERMISSIONS:
        found += ["withdraw", "transfer"]
    return tuple(found)
