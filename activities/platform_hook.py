"""The platform hook: how keyrevoke asks the breached platform to freeze keys and notify owners.

The embedded default is a file sink (one JSON object per line) that the platform, or a human, reads.
Every request carries an idempotency key (incident, key, action, state) so a retried activity that
sends the same request twice is recognised as one by the reader.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class HookRequest:
    """One request to the platform. Holds key references and fingerprints, never a secret."""

    action: str  # "freeze" | "notify"
    incident_id: str
    key_id: str
    venue: str
    fingerprint: str
    state: str = ""
    message: str = ""

    @property
    def idempotency_key(self) -> str:
        return f"{self.incident_id}/{self.key_id}/{self.action}/{self.state}"


class PlatformHook(Protocol):
    async def send(self, request: HookRequest) -> None: ...


class FileHook:
    """Appends each request as a JSON line to a file; writes are serialized within the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    async def send(self, request: HookRequest) -> None:
        line = json.dumps(
            {
                **asdict(request),
                "idempotency_key": request.idempotency_key,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


OWNER_MESSAGES: dict[str, str] = {
    "confirmed": "Your API key was revoked at the exchange and the exchange now rejects it. Create a new key.",
    "unconfirmed": "Your API key was deleted at the exchange, but we could not prove it is dead: "
    "check it in the exchange's API management page and delete it if it is still there.",
    "escalated": "The exchange could not revoke your API key through its API; its security team has been "
    "asked to. Delete the key yourself now in the exchange's API management page.",
    "live": "Your API key still works at the exchange. Delete it yourself now in the exchange's API management page.",
    "failed": "We could not revoke your API key. Delete it yourself now in the exchange's API management page.",
}
