"""The raw HTTP answer behind each ccxt call, recorded per asyncio task for the adapters.

ccxt raises one exception class for answers that mean different things to keyrevoke (Binance's 429 and
418 are both ``DDoSProtection``; OKX's "APIKey does not exist" is a plain ``ExchangeError``), and it
keeps no status code at all. Every adapter therefore hooks ccxt's ``on_rest_response`` and notes the
HTTP status, the response headers and the venue's own error code (never the body itself), so that
the venue's documented codes and statuses decide where the exception class is not enough.

The note is kept per asyncio task (a ``ContextVar``), so calls running at once through the one
shared master object never mix their answers (``exchange.last_response_headers`` is per object).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from keyrevoke.errors import RateLimited, VenueBanned, VenueError

#: a venue's own error code: Binance, Bybit and MEXC send numbers, OKX and KuCoin numeric strings,
#: Gate a label such as ``INVALID_KEY``
VenueCode = int | str


@dataclass(frozen=True)
class Answer:
    """The raw HTTP answer behind the last ccxt call of the current asyncio task (never its body)."""

    status: int
    headers: Mapping[str, str]
    code: VenueCode | None  # the venue's own error code, if the body carried one

    def header(self, name: str) -> str | None:
        """A response header, looked up case-insensitively."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


def venue_code(body: str, field: str) -> VenueCode | None:
    """The error code in ``field`` of a JSON object body; None for anything else (HTML, lists, ...)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    code = payload.get(field) if isinstance(payload, dict) else None
    if isinstance(code, bool):
        return None
    return code if isinstance(code, int | str) else None


class AnswerLog:
    """Records the answers of one venue's ccxt objects; ``field`` names the venue's error-code field.

    One instance per adapter module, e.g. ``AnswerLog("okx", "code")`` or ``AnswerLog("bybit", "retCode")``.
    """

    def __init__(self, venue: str, field: str) -> None:
        self.field = field
        self._last: ContextVar[Answer | None] = ContextVar(f"{venue}_last_answer", default=None)

    def watch(self, exchange: Any) -> Any:
        """Let ``exchange`` report its raw answers to the current task (see ``_remember``)."""
        exchange.on_rest_response = self._remember
        self._last.set(None)
        return exchange

    def last(self) -> Answer | None:
        """The answer to the current task's last call, if one came back."""
        return self._last.get()

    def code(self) -> VenueCode | None:
        """The venue's error code in the current task's last answer, if any."""
        answer = self._last.get()
        return answer.code if answer is not None else None

    def rejected(self, error: Exception) -> str:
        """``rejected: AuthenticationError (code -2015)``: the class and the venue's code, nothing else.

        An answer without the venue's code (a body that is not the venue's JSON) names its HTTP status
        instead, unless it is 200: ``rejected: AuthenticationError (HTTP 401)``.
        """
        answer = self._last.get()
        if answer is not None and answer.code is not None:
            suffix = f" ({self.field} {answer.code})"
        elif answer is not None and answer.status != 200:
            suffix = f" (HTTP {answer.status})"
        else:
            suffix = ""
        return f"rejected: {type(error).__name__}{suffix}"

    def _remember(
        self,
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        response_headers: Any,
        response_body: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        """ccxt's ``on_rest_response`` hook: note the answer, then do what ccxt's own hook does."""
        body = response_body or ""
        self._last.set(Answer(int(code), dict(response_headers or {}), self.code_of(body)))
        return body.strip()

    def code_of(self, body: str) -> VenueCode | None:
        """The venue's own error code in an answer's body: its ``field``, unless a venue says otherwise."""
        return venue_code(body, self.field)


#: The longest wait a venue's hint is taken at (Binance's longest IP ban is three days): a hint past it,
#: or not a finite number, would stall a batch or overflow a retry delay, so it is capped here, where
#: every venue's timing headers are read.
LONGEST_HINT_SECONDS = 3 * 86_400.0


def _hint(value: float) -> float | None:
    if math.isnan(value):
        return None
    return min(max(0.0, value), LONGEST_HINT_SECONDS)


def seconds(value: str | None) -> float | None:
    """A ``Retry-After``-style header in seconds (0 to ``LONGEST_HINT_SECONDS``); None if absent or unreadable."""
    if value is None:
        return None
    try:
        return _hint(float(value))
    except ValueError:
        return None


def until(timestamp: str | None) -> float | None:
    """Seconds from now until an epoch timestamp header, given in seconds or in milliseconds."""
    if timestamp is None:
        return None
    try:
        moment = float(timestamp)
    except ValueError:
        return None
    if moment > 1e11:  # milliseconds: 1e11 seconds is in the year 5138
        moment /= 1000
    return _hint(moment - time.time())


def throttled(
    venue: str, answer: Answer | None, retry_after: float | None = None, ban_retry_after: float | None = None
) -> VenueError | None:
    """What the HTTP status alone says, where ccxt's class does not: slow down, or banned for a while.

    429 is a rate limit whatever the body; 418 is a ban (Binance's and MEXC's word for it); a 403 that
    carries no venue error code is the front door's page (a CDN or firewall refusing the address), a
    ban too. A 403 with a venue code is the venue refusing the request itself, and is left to ccxt.
    """
    if answer is None:
        return None
    if answer.status == 429:
        return RateLimited(venue, f"HTTP 429 ({answer.code})" if answer.code is not None else "HTTP 429", retry_after)
    if answer.status == 418 or (answer.status == 403 and answer.code is None):
        return VenueBanned(venue, f"HTTP {answer.status}", ban_retry_after)
    return None
