"""What the commander reads from the ledger beyond one incident's counts: the incidents, a start's scope,
keys page by page, the pace of each venue, and a person closing keys.

Every read is one SQL query bounded by its ``limit`` or grouped by venue and state, so a million keys
never sit in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keyrevoke.errors import InputError
from keyrevoke.ledger.store import _KEY_STATUS_SELECT, KeyStatus, Ledger, Transition, _key_status, utc_now
from keyrevoke.states import FINAL_STATES, HANDLED, MAY_STILL_WORK, KeyState

#: Owners are matched in chunks of this many placeholders (SQLite allows 32766 per statement).
_CHUNK = 500


@dataclass(frozen=True)
class IncidentRow:
    """One line of ``keyrevoke incident list``."""

    incident_id: str
    created_at: str
    created_by: str
    counts: dict[str, int]  # state -> keys


def list_incidents(ledger: Ledger, limit: int) -> list[IncidentRow]:
    """The ``limit`` most recent incidents with their keys by state, newest first."""
    rows = ledger.db.query(
        "SELECT incident_id, created_at, created_by FROM incidents ORDER BY created_at DESC LIMIT ?", (limit,)
    )
    if not rows:
        return []
    ids = [str(row[0]) for row in rows]
    marks = ", ".join("?" for _ in ids)
    counts: dict[str, dict[str, int]] = {incident: {} for incident in ids}
    for incident, state, count in ledger.db.query(
        "SELECT incident_id, state, COUNT(*) FROM incident_keys"  # noqa: S608 - placeholders only
        f" WHERE incident_id IN ({marks}) GROUP BY incident_id, state",
        ids,
    ):
        counts[str(incident)][str(state)] = int(count)
    return [IncidentRow(str(i), str(at), str(by), counts[str(i)]) for i, at, by in rows]


@dataclass(frozen=True)
class ScopeVenue:
    """What a start would include at one venue."""

    venue: str
    keys: int  # in scope and to be revoked
    handled_before: int  # in scope, but confirmed dead or closed in an earlier incident
    methods: dict[str, int]  # revoke method -> keys to be revoked


def scope_preview(ledger: Ledger, venues: Sequence[str], owners: Sequence[str]) -> list[ScopeVenue]:
    """The keys a start with these filters would include, per venue, counting apart those already handled.

    An empty ``venues`` or ``owners`` means no filter on it.
    """
    handled = ", ".join("?" for _ in HANDLED)
    base = (
        "SELECT k.venue, k.method, CASE WHEN k.key_id IN (SELECT key_id FROM incident_keys"  # noqa: S608
        f" WHERE state IN ({handled})) THEN 1 ELSE 0 END, COUNT(*) FROM keys k"
    )
    params: list[Any] = [s.value for s in HANDLED]
    conditions = []
    if venues:
        conditions.append(f"k.venue IN ({', '.join('?' for _ in venues)})")
        params.extend(v.lower() for v in venues)
    totals: dict[str, dict[str, Any]] = {}
    owner_chunks: list[list[str]] = [list(owners[i : i + _CHUNK]) for i in range(0, len(owners), _CHUNK)] or [[]]
    for chunk in owner_chunks:
        chunk_conditions = list(conditions)
        if chunk:
            chunk_conditions.append(f"k.owner IN ({', '.join('?' for _ in chunk)})")
        where = (" WHERE " + " AND ".join(chunk_conditions)) if chunk_conditions else ""
        for venue, method, done_before, count in ledger.db.query(
            base + where + " GROUP BY k.venue, k.method, 3", [*params, *chunk]
        ):
            entry = totals.setdefault(str(venue), {"keys": 0, "handled": 0, "methods": {}})
            if int(done_before):
                entry["handled"] += int(count)
            else:
                entry["keys"] += int(count)
                entry["methods"][str(method)] = entry["methods"].get(str(method), 0) + int(count)
    return [
        ScopeVenue(venue, entry["keys"], entry["handled"], dict(sorted(entry["methods"].items())))
        for venue, entry in sorted(totals.items())
    ]


def page_keys(
    ledger: Ledger,
    incident_id: str,
    state: KeyState | None = None,
    venue: str | None = None,
    page_size: int = 500,
) -> Iterator[KeyStatus]:
    """The incident's keys (optionally of one state and venue) in venue and plan order, a page at a time."""
    after: tuple[str, int] = ("", -1)
    while True:
        conditions = ["ik.incident_id = ?", "(ik.venue > ? OR (ik.venue = ? AND ik.seq > ?))"]
        params: list[Any] = [incident_id, after[0], after[0], after[1]]
        if state is not None:
            conditions.append("ik.state = ?")
            params.append(state.value)
        if venue:
            conditions.append("ik.venue = ?")
            params.append(venue.lower())
        rows = ledger.db.query(
            _KEY_STATUS_SELECT.replace("SELECT ", "SELECT ik.seq, ", 1)
            + " WHERE "
            + " AND ".join(conditions)
            + " ORDER BY ik.venue, ik.seq LIMIT ?",
            [*params, page_size],
        )
        for row in rows:
            yield _key_status(row[1:])
        if len(rows) < page_size:
            return
        last = rows[-1]
        after = (str(last[2]), int(last[0]))


@dataclass(frozen=True)
class VenuePace:
    """When a venue's keys last changed state and how many reached a final state lately."""

    last_change: datetime | None
    finished_lately: int  # keys that reached a final state in the last ``window`` seconds
    window_seconds: float

    @property
    def keys_per_second(self) -> float:
        return self.finished_lately / self.window_seconds


def venue_pace(ledger: Ledger, incident_id: str, window_seconds: float = 60.0) -> dict[str, VenuePace]:
    """Per venue: the time of the last state change and the keys finished in the last ``window_seconds``.

    An incident younger than the window is measured over its age, so its first minute shows its real pace.
    """
    now = datetime.now(UTC)
    record = ledger.get_incident(incident_id)
    if record is not None:
        age = (now - datetime.fromisoformat(record.created_at)).total_seconds()
        window_seconds = max(1.0, min(window_seconds, age))
    since = (now - timedelta(seconds=window_seconds)).isoformat(timespec="milliseconds")
    finals = [s.value for s in FINAL_STATES]
    marks = ", ".join("?" for _ in finals)
    rows = ledger.db.query(
        "SELECT venue, MAX(updated_at), SUM(CASE WHEN state IN"  # noqa: S608 - placeholders only
        f" ({marks}) AND updated_at >= ? THEN 1 ELSE 0 END) FROM incident_keys WHERE incident_id = ? GROUP BY venue",
        (*finals, since, incident_id),
    )
    return {
        str(venue): VenuePace(datetime.fromisoformat(str(last)) if last else None, int(finished or 0), window_seconds)
        for venue, last, finished in rows
    }


@dataclass(frozen=True)
class Closed:
    closed: int  # keys moved to ``closed``
    already_handled: int  # keys named that were confirmed or closed already: left as they were


def close_keys(ledger: Ledger, incident_id: str, key_ids: Sequence[str], actor: str, reason: str) -> Closed:
    """A person closes keys that may still work (say, the owner deleted them): each gets an event with who and why.

    Every key named must belong to the incident, else nothing is closed and ``InputError`` names them.
    """
    if not reason.strip():
        raise InputError("--reason: say why the keys are closed (it goes into the event log)")
    ledger.require_incident(incident_id)
    venues: dict[str, str] = {}
    for start in range(0, len(key_ids), _CHUNK):
        chunk = list(key_ids[start : start + _CHUNK])
        marks = ", ".join("?" for _ in chunk)
        for key_id, venue in ledger.db.query(
            f"SELECT key_id, venue FROM incident_keys WHERE incident_id = ? AND key_id IN ({marks})",  # noqa: S608
            (incident_id, *chunk),
        ):
            venues[str(key_id)] = str(venue)
    missing = [k for k in key_ids if k not in venues]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"not keys of incident {incident_id}: {shown}; nothing was closed")
    detail = json.dumps({"closed_by": actor, "reason": reason})
    may_work = tuple(sorted(MAY_STILL_WORK))
    moved = 0
    for start in range(0, len(key_ids), _CHUNK):
        transitions = [
            Transition(
                key_id,
                venues[key_id],
                KeyState.CLOSED,
                may_work,
                "key.closed",
                detail,
                {"ended_at": utc_now(), "detail": f"closed by {actor}: {reason}"},
            )
            for key_id in key_ids[start : start + _CHUNK]
        ]
        moved += len(ledger.apply(incident_id, transitions, actor))
    return Closed(moved, len(set(key_ids)) - moved)


def key_ids_in(ledger: Ledger, incident_id: str, state: KeyState, venue: str | None) -> list[str]:
    """The ids of the incident's keys in ``state`` (at ``venue``): for closing them by state."""
    return [status.key_id for status in page_keys(ledger, incident_id, state, venue)]
