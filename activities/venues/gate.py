"""Gate: probe a key by reading its own account detail; revoke it as the main account of its sub-account.

Follows Gate's API v4 documentation (www.gate.io/docs/developers/apiv4/en/):

- probe: "Get account detail", ``GET /api/v4/account/detail``, signed by the key itself (any
  permission reads it); the answer names no permissions, only the key's IP whitelist;
- revoke ``sub``: "Delete API key of the sub-account",
  ``DELETE /api/v4/sub_accounts/{user_id}/keys/{key}`` (``user_id`` is the inventory's ``account``),
  signed by the main account's key, answered 204;
- signing: "APIv4 signed request requirements" (#authentication): ``KEY``, ``Timestamp`` (seconds,
  at most 60 s off) and ``SIGN``, hex HMAC-SHA512 of method, URL, query string, SHA512 of the body
  and timestamp;
- answers: "Error Handling" (#error-handling): non-2xx statuses with ``{"label", "message"}``:
  ``INVALID_KEY``, ``INVALID_SIGNATURE``, ``IP_FORBIDDEN``, ``REQUEST_EXPIRED`` (401),
  ``FORBIDDEN``, ``TOO_MANY_REQUESTS`` (429), ``SUB_ACCOUNT_NOT_FOUND``; "Frequency limit rule":
  ``X-Gate-RateLimit-Reset-Timestamp`` says when a limited caller may call again.

ccxt maps the authentication labels to ``AuthenticationError`` (``FORBIDDEN`` and ``READ_ONLY`` to
``PermissionDenied``) and ``TOO_MANY_REQUESTS`` to ``RateLimitExceeded``. Two labels need more than
the class: ``REQUEST_EXPIRED`` is a clock out of step, not a bad key, and is retried like ccxt's
``InvalidNonce`` elsewhere; a delete answered ``NOT_FOUND`` found no such key in the sub-account, and
the key is already gone (the verification probes confirm it).
"""

from __future__ import annotations

from typing import Any

from activities.venues.answers import Answer, AnswerLog, until
from activities.venues.base import KeyTarget, ProbeAnswer, RevokeAnswer, VenueAdapter, ip_binding, key_works
from keyrevoke.errors import Misconfigured, VenueError, VenueUnavailable

#: the request's Timestamp is too far from Gate's clock: ours is off, the key may be fine
REQUEST_EXPIRED = "REQUEST_EXPIRED"
#: a delete that found no such key in the sub-account
NOT_FOUND = "NOT_FOUND"

#: the raw answers behind this module's ccxt calls; Gate's error code is its ``label``
ANSWERS = AnswerLog("gate", "label")


class GateAdapter(VenueAdapter):
    """Gate API v4 through ccxt's implicit methods (pages listed in this module's docstring)."""

    venue = "gate"
    revoke_methods = ("sub",)
    master_methods = frozenset({"sub"})
    answers = ANSWERS
    gone_codes = {NOT_FOUND: "sub-account delete: NOT_FOUND"}
    master_refused_as = "main account refused"

    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Read the key's account detail: it authenticates, or Gate rejects it."""
        # AuthenticationError rejects the key (IP_FORBIDDEN and FORBIDDEN included), REQUEST_EXPIRED excepted
        return await self.probe_as_key(
            target, lambda exchange: exchange.privateAccountGetDetail(), "account detail", _read
        )

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key as the main account; a key the sub-account no longer has is already gone."""
        self.revoke_method(target)
        if not target.account.isdigit():
            raise Misconfigured(
                self.venue, "the sub-account delete needs the key's numeric sub-account user id (inventory `account`)"
            )
        params = {"user_id": target.account, "key": target.credentials.api_key}
        return await self.call_as_master(
            target,
            lambda exchange: exchange.privateSubAccountsDeleteSubAccountsUserIdKeysKey(params),
            "deleted by main account: DELETE sub_accounts/keys",
        )

    def _rejects(self, error: Exception) -> bool:
        return super()._rejects(error) and ANSWERS.code() != REQUEST_EXPIRED

    def _master_refuses(self, error: Exception) -> bool:
        return super()._master_refuses(error) and ANSWERS.code() != REQUEST_EXPIRED

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        if ANSWERS.code() == REQUEST_EXPIRED:
            return VenueUnavailable(self.venue, "REQUEST_EXPIRED: our clock is off Gate's")
        return super()._classify(error, exchange)

    def _retry_after(self, answer: Answer) -> float | None:
        return until(answer.header("X-Gate-RateLimit-Reset-Timestamp"))


def _read(detail: Any) -> ProbeAnswer | None:
    if not isinstance(detail, dict):
        return None
    # Gate's account detail names no permissions: the key reads, the rest is not known here
    return key_works("account/detail", ("read",), ip_whitelist=ip_binding(detail.get("ip_whitelist")))
