"""The hash chain over an incident's event log: tampering with any recorded event shows.

Each event's hash covers its own fields and the previous event's hash, so changing, removing or
reordering an event breaks every hash after it. ``verify_chain`` says where the chain first breaks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keyrevoke.states import KeyState

GENESIS = "0" * 64

#: the fields each hash covers, in this order
CHAINED_FIELDS: tuple[str, ...] = ("incident_id", "n", "at", "actor", "kind", "venue", "key_id", "detail")


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's chained fields, as canonical JSON."""
    body = json.dumps([prev_hash, *(event[name] for name in CHAINED_FIELDS)], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain breaks: the event number and what is wrong with it."""

    n: int
    reason: str

    def __str__(self) -> str:
        return f"event {self.n}: {self.reason}"


class ChainChecker:
    """Checks events one at a time, in order, holding only the last hash: for streams of any length."""

    def __init__(self) -> None:
        self.head = GENESIS
        self.length = 0

    def add(self, event: Mapping[str, Any]) -> ChainBreak | None:
        """Check the next event; None when it follows the ones before it."""
        expected_n = self.length + 1
        missing = [name for name in (*CHAINED_FIELDS, "prev_hash", "hash") if name not in event]
        if missing:
            return ChainBreak(expected_n, f"lacks field(s) {', '.join(missing)}")
        wrong = [
            name for name in (*CHAINED_FIELDS, "prev_hash", "hash") if name != "n" and not isinstance(event[name], str)
        ]
        if wrong or type(event["n"]) is not int:
            return ChainBreak(expected_n, f"field {(wrong or ['n'])[0]} has the wrong type")
        n = event["n"]
        if n != expected_n:
            return ChainBreak(expected_n, f"numbered {n}: an event is missing or out of order")
        if event["prev_hash"] != self.head:
            return ChainBreak(n, "does not follow the event before it (prev_hash differs)")
        if event_hash(self.head, event) != event["hash"]:
            return ChainBreak(n, "its content does not match its hash (changed after it was recorded)")
        self.head = event["hash"]
        self.length = n
        return None


def verify_chain(events: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """Check an incident's events in order; None when the whole chain holds."""
    checker = ChainChecker()
    for event in events:
        broken = checker.add(event)
        if broken is not None:
            return broken
    return None


#: key events whose kind is not ``key.<the state it moves the key to>``
_KIND_STATES = {"key.baseline": KeyState.REVOKING.value, "key.revoked.by_exchange": KeyState.REVOKED.value}
_STATE_VALUES = frozenset(s.value for s in KeyState)


def state_after(kind: str) -> str | None:
    """The state a key is in after an event of ``kind``, or None if such an event does not move it.

    Every transition the ledger applies is named ``key.<state>`` (or is one of the few in
    ``_KIND_STATES``), which the ledger enforces: so a key's state follows from its events alone,
    and a report's keys table can be checked against its event log.
    """
    if kind in _KIND_STATES:
        return _KIND_STATES[kind]
    name = kind.removeprefix("key.")
    return name if name != kind and name in _STATE_VALUES else None
