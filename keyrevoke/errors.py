"""keyrevoke's error hierarchy.

Errors are classified once, at the edge where they enter (an inventory file, a setting, a venue's
answer), into one of these types; everything further in decides on the type, never on a message.
No message here ever carries a secret or a full API key: callers pass fingerprints.
"""

from __future__ import annotations


class KeyrevokeError(Exception):
    """Base of every error keyrevoke raises on purpose."""


# --- input: inventory files, settings, command-line arguments -----------------------------------


class InputError(KeyrevokeError):
    """Something a human handed us is wrong; the message says what and where."""


class InventoryRowError(InputError):
    """One inventory row cannot be used. The rest of the file still imports."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}")


class ConfigurationError(InputError):
    """A setting is missing or wrong."""


class IncidentConflictError(InputError):
    """An incident id is reused with a different scope."""


class ServiceUnreachable(KeyrevokeError):
    """Temporal or the ledger's database does not answer; the message names the address and the fix."""


# --- secrets at rest ----------------------------------------------------------------------------


class SecretStoreError(KeyrevokeError):
    """A secret cannot be decrypted: wrong or missing key-encryption key, or tampered data."""


# --- venues -------------------------------------------------------------------------------------


class VenueError(KeyrevokeError):
    """A venue's answer, classified. ``venue`` names it; the message holds no secret."""

    #: retrying the same request later may succeed
    retryable: bool = False

    def __init__(self, venue: str, message: str) -> None:
        self.venue = venue
        super().__init__(f"{venue}: {message}")


class KeyRejected(VenueError):
    """The venue does not accept the key: invalid, deleted, expired (or an IP allow-list that hides it)."""


class RevokeRefused(VenueError):
    """The venue refuses this revoke for good: no permission, no such account, not supported."""


class UnsupportedVenue(VenueError):
    """keyrevoke has no adapter or no revoke method for this venue."""


class Misconfigured(VenueError):
    """keyrevoke's own set-up lacks what this revoke needs (master credentials, a venue URL, an account
    field). Nothing is asked of the venue and nothing goes to its security team: the key ends
    ``misconfigured`` with this message, which says what to set."""


class VenueUnavailable(VenueError):
    """Timeouts, 5xx, maintenance: the request may work later."""

    retryable = True


class RateLimited(VenueError):
    """The venue asks us to slow down (HTTP 429 and kin). ``retry_after`` is its hint in seconds."""

    retryable = True

    def __init__(self, venue: str, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(venue, message)


class VenueBanned(RateLimited):
    """The venue has banned us for a while (Binance's HTTP 418): stop calling it until the ban ends."""
