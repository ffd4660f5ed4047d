"""The states of one key within an incident, and which of them end its life."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    MISCONFIGURED = "misconfigured"  # our own set-up is missing something (master credentials, a venue URL,
    # an account field): nothing was asked of the venue; fix the configuration and start again
    CLOSED = "closed"  # a person closed the key (the owner deleted it, the exchange said so): who and why recorded


FINAL_STATES: frozenset[KeyState] = frozenset(
    {
        KeyState.CONFIRMED,
        KeyState.UNCONFIRMED,
        KeyState.ESCALATED,
        KeyState.LIVE,
        KeyState.FAILED,
        KeyState.UNFROZEN,
        KeyState.MISCONFIGURED,
        KeyState.CLOSED,
    }
)

NEEDS_HUMAN: frozenset[KeyState] = frozenset(
    {KeyState.UNCONFIRMED, KeyState.ESCALATED, KeyState.LIVE, KeyState.FAILED, KeyState.MISCONFIGURED}
)

# A key is handled only when proven dead or closed by a person; every other key may still work,
# whether or not keyrevoke's work on it has ended (done is not safe).
HANDLED: frozenset[KeyState] = frozenset({KeyState.CONFIRMED, KeyState.CLOSED})
MAY_STILL_WORK: frozenset[KeyState] = frozenset(KeyState) - HANDLED

# What the commander does next about keys in each state that may still work.
NEXT_STEP: dict[KeyState, str] = {
    KeyState.PENDING: "wait: the incident has not reached these keys yet",
    KeyState.FROZEN: "wait: the platform stopped using them; the baseline probe is next",
    KeyState.REVOKING: "wait: the revoke is under way",
    KeyState.REVOKED: "wait: the venue accepted the revoke; probes are verifying it",
    KeyState.UNCONFIRMED: "ask the owners to check and delete them at the exchange, then `keyrevoke incident close`",
    KeyState.ESCALATED: "send the escalation packet to the exchange's security team; on its answer run "
    "`keyrevoke incident confirm`",
    KeyState.LIVE: "the owners must delete them at the exchange now; then `keyrevoke incident close`",
    KeyState.FAILED: "read each key's last error (`keyrevoke incident keys ID --state failed`), fix what it "
    "names (a bad row, or a venue that did not answer: wait until it does), start again",
    KeyState.UNFROZEN: "they were handed back unrevoked (cancel or narrow): start a new incident if they must die",
    KeyState.MISCONFIGURED: "fix keyrevoke's configuration (`keyrevoke check`), then start the incident again",
}

# Order in which states are shown: the key's life from left to right.
DISPLAY_ORDER: tuple[KeyState, ...] = tuple(KeyState)


@dataclass(frozen=True)
class Measures:
    """The two numbers every view shows: how much work has ended, and how many keys may still work."""

    total: int
    finished: int  # keys in a final state: keyrevoke's work on them has ended
    handled: int  # confirmed dead or closed by a person
    may_still_work: int  # total - handled: the number that matters on the worst day

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> Measures:
        """From one mapping state -> number of keys (unknown states count as may still work)."""
        total = sum(counts.values())
        finished = sum(n for state, n in counts.items() if state in _FINAL_VALUES)
        handled = sum(n for state, n in counts.items() if state in _HANDLED_VALUES)
        return cls(total=total, finished=finished, handled=handled, may_still_work=total - handled)

    @property
    def finished_ratio(self) -> float:
        return self.finished / self.total if self.total else 1.0

    @property
    def handled_ratio(self) -> float:
        return self.handled / self.total if self.total else 1.0

    @property
    def safe(self) -> bool:
        """Every key in scope is proven dead or closed by a person."""
        return self.may_still_work == 0


_FINAL_VALUES = frozenset(s.value for s in FINAL_STATES)
_HANDLED_VALUES = frozenset(s.value for s in HANDLED)
