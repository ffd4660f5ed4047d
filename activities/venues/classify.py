"""One table that turns ccxt's exceptions into keyrevoke's venue errors.

ccxt maps each venue's error codes and HTTP statuses onto its exception classes; we classify on those
classes, never on message strings. The first matching row wins, so subclasses come before their
bases (``DDoSProtection`` before ``NetworkError``, ``PermissionDenied`` before ``AuthenticationError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt

from activities.venues.answers import seconds
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
#   retried    - RateLimited, VenueUnavailable: the same request may work later (VenueBanned waits first)
#   permanent  - RevokeRefused, UnsupportedVenue: escalated to a human, never retried
#   confirms   - KeyRejected: the venue refuses the key itself; after a revoke, a probe that gets it
#                confirms the revocation (if the key's baseline probe had worked)
# Where one ccxt class stands for answers that mean different things, the adapter decides first on
# the HTTP status or the venue's own code (activities.venues.answers), and only then falls back here.
CLASSIFICATION: tuple[tuple[type[Exception], type[VenueError]], ...] = (
    # retried after the venue's hint: Bybit 10006/10018, OKX 50011, KuCoin 429000, Gate
    # TOO_MANY_REQUESTS, MEXC 429; but also Bybit's HTTP 403 IP ban, which its adapter tells apart
    (ccxt.RateLimitExceeded, RateLimited),
    # ccxt raises it for Binance's 429 *and* 418 alike (and for anti-DDoS pages): the Binance adapter
    # reads the status; without one, waiting out a ban is the safe reading
    (ccxt.DDoSProtection, VenueBanned),
    (ccxt.RequestTimeout, VenueUnavailable),  # retried: no answer in time (the outcome is unknown)
    (ccxt.InvalidNonce, VenueUnavailable),  # retried: our timestamp is outside the venue's window
    (ccxt.OnMaintenance, VenueUnavailable),  # retried
    (ccxt.ExchangeNotAvailable, VenueUnavailable),  # retried: 5xx, and statuses without a venue code
    (ccxt.NetworkError, VenueUnavailable),  # retried: connection dropped, refused, reset
    (ccxt.AccountSuspended, RevokeRefused),  # permanent
    (ccxt.PermissionDenied, RevokeRefused),  # permanent: the revoking account lacks the right
    (ccxt.AuthenticationError, KeyRejected),  # confirms: invalid or deleted key, bad signature
    (ccxt.NotSupported, UnsupportedVenue),  # permanent
    (ccxt.BadRequest, RevokeRefused),  # permanent
    (ccxt.ExchangeError, RevokeRefused),  # permanent: any other answer the venue gave
)


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    value = next((value for name, value in (headers or {}).items() if name.lower() == "retry-after"), None)
    return seconds(str(value)) if value is not None else None


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
