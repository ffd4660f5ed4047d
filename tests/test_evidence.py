"""The hash-chained event log: it holds as recorded, and any change to it shows where."""

from __future__ import annotations

import copy
from typing import Any

from keyrevoke.evidence import GENESIS, event_hash, verify_chain


def _chain(count: int) -> list[dict[str, Any]]:
    events, prev = [], GENESIS
    for n in range(1, count + 1):
        event = {
            "incident_id": "inc-1",
            "n": n,
            "at": f"2026-11-25T12:00:{n:02d}.000+00:00",
            "actor": "commander",
            "kind": "key.revoked",
            "venue": "binance",
            "key_id": f"k{n}",
            "detail": "deleted",
        }
        digest = event_hash(prev, event)
        events.append({**event, "prev_hash": prev, "hash": digest})
        prev = digest
    return events


def test_an_untouched_chain_holds() -> None:
    assert verify_chain(_chain(5)) is None
    assert verify_chain([]) is None


def test_a_changed_event_is_found() -> None:
    events = _chain(5)
    events[2]["detail"] = "refused"
    broken = verify_chain(events)
    assert broken is not None
    assert broken.n == 3
    assert "content" in broken.reason


def test_a_removed_event_is_found() -> None:
    events = _chain(5)
    del events[1]
    broken = verify_chain(events)
    assert broken is not None
    assert broken.n == 2


def test_a_rehashed_event_breaks_the_next_link() -> None:
    events = copy.deepcopy(_chain(4))
    events[1]["actor"] = "mallory"
    events[1]["hash"] = event_hash(events[1]["prev_hash"], events[1])
    broken = verify_chain(events)
    assert broken is not None
    assert broken.n == 3
    assert "prev_hash" in broken.reason
