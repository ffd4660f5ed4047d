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


def verify_chain(events: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """Check an incident's events in order; None when the whole chain holds."""
    prev = GENESIS
    expected_n = 1
    for event in events:
        missing = [name for name in (*CHAINED_FIELDS, "prev_hash", "hash") if name not in event]
        if missing:
            return ChainBreak(expected_n, f"lacks field(s) {', '.join(missing)}")
        n = event["n"]
        if n != expected_n:
            return ChainBreak(expected_n, f"numbered {n}: an event is missing or out of order")
        if event["prev_hash"] != prev:
            return ChainBreak(n, "does not follow the event before it (prev_hash differs)")
        if event_hash(prev, event) != event["hash"]:
            return ChainBreak(n, "its content does not match its hash (changed after it was recorded)")
        prev = event["hash"]
        expected_n += 1
    return None
