"""Counters of what the simulator saw and answered, for tests and for rate measurements."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimStats:
    """Request and answer counts per venue.

    ``paths[venue][path]`` counts requests per endpoint, ``statuses[venue][status]`` the answers'
    HTTP statuses. ``per_second[venue][unix_second]`` counts requests that arrived in that wall-clock second.
    ``rate_limited`` counts each venue's rate-limit answers (Binance 429, Bybit retCode 10006, ...);
    ``banned`` counts its ban answers (Binance and MEXC 418, the others' 403). ``deletes`` counts keys
    actually deleted (a repeated delete of a deleted key is not counted); ``lost_answers`` counts
    deletes whose answer the simulator dropped on purpose.
    """

    requests: Counter[str] = field(default_factory=Counter)
    paths: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    per_second: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    rate_limited: Counter[str] = field(default_factory=Counter)
    banned: Counter[str] = field(default_factory=Counter)
    deletes: Counter[str] = field(default_factory=Counter)
    lost_answers: Counter[str] = field(default_factory=Counter)

    def record_request(self, venue: str, path: str, now: float | None = None) -> None:
        """Count a request as it arrives, before any fault or check."""
        self.requests[venue] += 1
        self.paths[venue][path] += 1
        self.per_second[venue][int(time.time() if now is None else now)] += 1

    def record_status(self, venue: str, status: int) -> None:
        """Count the HTTP status of an answer (0: the connection was dropped on purpose)."""
        self.statuses[venue][status] += 1

    def peak_requests_per_second(self, venue: str) -> int:
        """The most requests ``venue`` received in any one wall-clock second."""
        seconds = self.per_second.get(venue)
        return max(seconds.values()) if seconds else 0

    def snapshot(self) -> dict[str, Any]:
        """A plain, JSON-ready copy of every counter."""
        return {
            "requests": dict(self.requests),
            "paths": {venue: dict(counts) for venue, counts in self.paths.items()},
            "per_second": {venue: dict(counts) for venue, counts in self.per_second.items()},
            "statuses": {venue: dict(counts) for venue, counts in self.statuses.items()},
            "rate_limited": dict(self.rate_limited),
            "banned": dict(self.banned),
            "deletes": dict(self.deletes),
            "lost_answers": dict(self.lost_answers),
        }
