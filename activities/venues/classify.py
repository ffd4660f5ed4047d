"""One table that turns ccxt's exceptions into keyrevoke's venue errors.

ccxt maps each venue's error codes and HTTP statuses onto its exception classes; we classify on those
classes, never on message strings. The first matching row wins, so subclasses come before their
bases (``DDoSProtection`` before ``NetworkError``, ``PermissionDenied`` before ``AuthenticationError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt

from keyrevoke.errors import (
    KeyRejected,
    RateLimited,
    RevokeRefused,
    UnsupportedVenue,
    VenueBanned,
    VenueError,
    VenueUnavailable,
)

# (ccxt class, keyrevoke class): what each kind of venue answer means for a key or a batch.
CLASSIFICATION: tuple[tuple[type[Exception], type[VenueError]], ...] = (
    (ccxt.RateLimitExceeded, RateLimited),  # 429, Binance -1003, Bybit 10006/10018
    (ccxt.DDoSProtection, VenueBanned),  # HTTP 418 (Binance's IP ban) and anti-DDoS walls
    (ccxt.RequestTimeout, VenueUnavailable),
    (ccxt.OnMaintenance, VenueUnavailable),
    (ccxt.ExchangeNotAvailable, VenueUnavailable),  # 5xx
    (ccxt.NetworkError, VenueUnavailable),
    (ccxt.AccountSuspended, RevokeRefused),
    (ccxt.PermissionDenied, RevokeRefused),  # the revoking account lacks the right, or IP mismatch
    (ccxt.AuthenticationError, KeyRejected),  # invalid or deleted key: confirms a revoke when probing
    (ccxt.NotSupported, UnsupportedVenue),
    (ccxt.BadRequest, RevokeRefused),
    (ccxt.ExchangeError, RevokeRefused),
)


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def classify(venue: str, error: Exception, headers: Mapping[str, Any] | None = None) -> VenueError:
    """The keyrevoke error for a ccxt exception raised while calling ``venue``.

    ``headers`` are the response headers ccxt kept (``exchange.last_response_headers``), for
    Retry-After. The message keeps only the exception's class name: ccxt's messages echo the
    request URL, which for some venues holds the API key.
    """
    if isinstance(error, VenueError):
        return error
    for ccxt_class, keyrevoke_class in CLASSIFICATION:
        if isinstance(error, ccxt_class):
            message = type(error).__name__
            if issubclass(keyrevoke_class, RateLimited):
                return keyrevoke_class(venue, message, _retry_after(headers))
            return keyrevoke_class(venue, message)
    return VenueUnavailable(venue, type(error).__name__)
