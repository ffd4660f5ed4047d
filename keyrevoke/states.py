"""The states of one key within an incident, and which of them end its life."""

from __future__ import annotations

from enum import StrEnum


class KeyState(StrEnum):
    """Where one key of an incident stands.

    Every state a human must act on (``unconfirmed``, ``escalated``, ``live``, ``failed``) is a state
    of its own so that it is counted and shown, never folded into another.
    """

    PENDING = "pending"  # in scope, nothing done yet
    FROZEN = "frozen"  # the platform stopped using the key; baseline probe not done yet
    REVOKING = "revoking"  # baseline probe answered; revoke not yet accepted by the venue
    REVOKED = "revoked"  # the venue accepted the delete; verify probes under way
    CONFIRMED = "confirmed"  # baseline probe worked, and after the revoke the venue rejects the key
    UNCONFIRMED = "unconfirmed"  # revoked, but the baseline probe failed, so a rejection proves nothing
    ESCALATED = "escalated"  # the venue refused or cannot revoke through its API: its security team must
    LIVE = "live"  # still authenticates after the verify deadline: the owner must revoke it by hand
    FAILED = "failed"  # an error that no retry will fix (bad inventory data, unknown method)
    UNFROZEN = "unfrozen"  # incident cancelled or narrowed before the revoke: key handed back


FINAL_STATES: frozenset[KeyState] = frozenset(
    {
        KeyState.CONFIRMED,
        KeyState.UNCONFIRMED,
        KeyState.ESCALATED,
        KeyState.LIVE,
        KeyState.FAILED,
        KeyState.UNFROZEN,
    }
)

NEEDS_HUMAN: frozenset[KeyState] = frozenset({KeyState.UNCONFIRMED, KeyState.ESCALATED, KeyState.LIVE, KeyState.FAILED})

# Order in which states are shown: the key's life from left to right.
DISPLAY_ORDER: tuple[KeyState, ...] = tuple(KeyState)
