"""What the batch activities report for dashboards: an interface, and a default that records nothing.

The activities call these methods at the moments a human cares about; an OpenTelemetry-backed
implementation turns them into Prometheus-friendly metrics. Arguments are venue names, state names
and error class names only: never a key, a fingerprint or a secret (a metric label with a key id
would also explode the series count).
"""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def key_transition(self, venue: str, state: str) -> None:
        """A key of ``venue`` entered ``state``."""

    def revoke_latency(self, venue: str, seconds: float) -> None:
        """How long one revoke request took, from sending it to the venue's acceptance."""

    def confirm_latency(self, venue: str, seconds: float) -> None:
        """From the venue's acceptance of a revoke to the probe that confirms it."""

    def venue_error(self, venue: str, error: str) -> None:
        """A classified venue error (``RateLimited``, ``VenueUnavailable``, ...) reached the batch."""


class NoTelemetry:
    """Records nothing: tests and the CLI's one-shot commands."""

    def key_transition(self, venue: str, state: str) -> None:
        return None

    def revoke_latency(self, venue: str, seconds: float) -> None:
        return None

    def confirm_latency(self, venue: str, seconds: float) -> None:
        return None

    def venue_error(self, venue: str, error: str) -> None:
        return None
