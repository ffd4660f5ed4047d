"""One incident read as of one moment, a page at a time: what the evidence report is written from.

Everything is read inside one read-only transaction, so the keys, the events and the counts agree
with each other however long the report takes, and no query holds more than one page in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from keyrevoke.errors import InputError
from keyrevoke.ledger.store import _KEY_STATUS_SELECT, IncidentRecord, KeyStatus, _key_status

PAGE = 1000

EVENT_FIELDS = ("incident_id", "n", "at", "actor", "kind", "venue", "key_id", "detail", "prev_hash", "hash")


class IncidentSnapshot:
    """Reads of one incident inside the caller's read-only transaction (``Database.read_snapshot``)."""

    def __init__(self, tx: Any, incident_id: str) -> None:
        self._tx = tx
        self.incident_id = incident_id

    def incident(self) -> IncidentRecord:
        rows = self._tx.fetchall(
            "SELECT scope, created_at, created_by FROM incidents WHERE incident_id = ?", (self.incident_id,)
        )
        if not rows:
            raise InputError(f"no incident {self.incident_id!r} in the ledger")
        scope = json.loads(rows[0][0])
        return IncidentRecord(self.incident_id, tuple(scope["venues"]), scope["owners"], rows[0][1], rows[0][2])

    def chain_head(self) -> tuple[str, int]:
        rows = self._tx.fetchall(
            "SELECT chain_head, chain_length FROM incidents WHERE incident_id = ?", (self.incident_id,)
        )
        return str(rows[0][0]), int(rows[0][1])

    def counts(self) -> dict[str, dict[str, int]]:
        """Keys per state per venue, counted in SQL."""
        result: dict[str, dict[str, int]] = {}
        for venue, state, count in self._tx.fetchall(
            "SELECT venue, state, COUNT(*) FROM incident_keys WHERE incident_id = ? GROUP BY venue, state",
            (self.incident_id,),
        ):
            result.setdefault(str(venue), {})[str(state)] = int(count)
        return {venue: dict(sorted(per.items())) for venue, per in sorted(result.items())}

    def events(self, page: int | None = None) -> Iterator[dict[str, Any]]:
        """Every event in chain order, ``page`` at a time (keyset paging on the chain's index)."""
        page = page or PAGE
        after = 0
        while True:
            rows = self._tx.fetchall(
                "SELECT incident_id, n, at, actor, kind, venue, key_id, detail, prev_hash, hash FROM events"
                " WHERE incident_id = ? AND n > ? ORDER BY n LIMIT ?",
                (self.incident_id, after, page),
            )
            for row in rows:
                yield dict(zip(EVENT_FIELDS, (row[0], int(row[1]), *row[2:]), strict=True))
            if len(rows) < page:
                return
            after = int(rows[-1][1])

    def key_statuses(
        self, states: Sequence[str] = (), limit: int | None = None, page: int | None = None
    ) -> Iterator[KeyStatus]:
        """The incident's keys (only those in ``states`` if given) in venue and plan order, a page at a time."""
        page = page or PAGE
        state_filter = f" AND ik.state IN ({', '.join('?' for _ in states)})" if states else ""
        venue, seq, given = "", -1, 0
        while limit is None or given < limit:
            size = page if limit is None else min(page, limit - given)
            rows = self._tx.fetchall(
                _KEY_STATUS_SELECT.replace("SELECT ", "SELECT ik.seq, ", 1)
                + " WHERE ik.incident_id = ? AND (ik.venue > ? OR (ik.venue = ? AND ik.seq > ?))"
                + state_filter
                + " ORDER BY ik.venue, ik.seq LIMIT ?",
                (self.incident_id, venue, venue, seq, *states, size),
            )
            for row in rows:
                yield _key_status(row[1:])
            given += len(rows)
            if len(rows) < size:
                return
            venue, seq = str(rows[-1][2]), int(rows[-1][0])
