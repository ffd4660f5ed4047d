"""Faults and limits the simulator injects, per venue, read from a JSON file.

Format (every field optional; a venue not listed has no faults)::

    {
      "seed": 7,
      "venues": {
        "binance": {
          "latency_ms": 20,             # added to every answer
          "error_rate": 0.02,           # fraction answered 503 (seeded random)
          "timeout_rate": 0.01,         # fraction left hanging for hang_seconds (beyond any client timeout)
          "hang_seconds": 30,
          "requests_per_second": 50,    # 0 = unlimited; over it, the venue's own rate-limit answer
          "ban_after_429s": 5,          # that many rate-limit answers within a minute start a ban; 0 = never
          "ban_seconds": 120,           # the venue's ban answer (Binance/MEXC 418, else 403) this long
          "lost_delete_rate": 0.05,     # delete done, but the connection drops or a 502 comes back
          "revoke_grace_seconds": 3,    # a deleted key keeps authenticating this long
          "ip_blocked_keys": ["k-17"],  # key_ids whose every call is refused as from a wrong IP
          "already_deleted_keys": ["k-18"],
          "master_lacks_permission": false
        }
      }
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VenueFaults:
    """Faults and limits of one venue. The defaults inject nothing."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    requests_per_second: float = 0.0
    ban_after_429s: int = 0
    ban_seconds: float = 120.0
    lost_delete_rate: float = 0.0
    revoke_grace_seconds: float = 0.0
    ip_blocked_keys: frozenset[str] = frozenset()
    already_deleted_keys: frozenset[str] = frozenset()
    master_lacks_permission: bool = False

    def __post_init__(self) -> None:
        for name in ("error_rate", "timeout_rate", "lost_delete_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        for name in ("latency_ms", "hang_seconds", "requests_per_second", "ban_seconds", "revoke_grace_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.ban_after_429s < 0:
            raise ValueError("ban_after_429s must not be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VenueFaults:
        """One venue's entry of a scenario file; unknown fields are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            # a typo in a fault name would otherwise silently test nothing
            raise ValueError(f"unknown scenario fields {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        for name in ("ip_blocked_keys", "already_deleted_keys"):
            if name in values:
                items = values[name]
                if isinstance(items, str) or not all(isinstance(item, str) for item in items):
                    raise ValueError(f"{name} must be a list of key_id strings")
                values[name] = frozenset(items)
        return cls(**values)


@dataclass(frozen=True)
class Scenario:
    """Per-venue faults plus the seed of every random draw. ``Scenario()`` injects no fault."""

    venues: Mapping[str, VenueFaults] = field(default_factory=dict)
    seed: int = 0

    def for_venue(self, venue: str) -> VenueFaults:
        """The faults of ``venue``; none if the scenario does not list it."""
        return self.venues.get(venue, VenueFaults())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """A scenario from its JSON form (see this module's docstring)."""
        unknown = set(data) - {"venues", "seed"}
        if unknown:
            raise ValueError(f"unknown scenario fields {sorted(unknown)}; known: ['seed', 'venues']")
        venues_data = data.get("venues", {})
        if not isinstance(venues_data, Mapping):
            raise ValueError("'venues' must map venue names to their faults")
        venues = {}
        for venue, faults in venues_data.items():
            try:
                venues[venue] = VenueFaults.from_dict(faults)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"venue {venue!r}: {exc}") from None
        return cls(venues=venues, seed=int(data.get("seed", 0)))

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """Read a scenario from a JSON file (format in this module's docstring)."""
        with Path(path).open(encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a scenario is a JSON object")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
