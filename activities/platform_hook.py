"""The platform hook: how keyrevoke asks the breached platform to freeze keys and notify owners.

Two sinks, one payload. The embedded default is a file (one JSON object per line) that the platform,
or a human, reads. In production, ``KEYREVOKE_HOOK_URL`` names an HTTP endpoint that receives each
request as ``POST`` with a JSON body::

    {"action": "freeze" | "unfreeze" | "notify", "incident_id": "...", "key_id": "...",
     "venue": "binance", "fingerprint": "sha256:...", "state": "confirmed", "message": "...",
     "idempotency_key": "<incident>/<key>/<action>/<state>", "at": "2026-11-25T12:00:00.000+00:00"}

At the end of each venue's work (and again when an escalated key is later confirmed) each owner gets
one ``owner_notice`` call listing all their keys in the incident::

    {"action": "owner_notice", "incident_id": "...", "owner": "...", "subject": "...", "message": "...",
     "keys": [{"venue": "binance", "key_id": "...", "key_hint": "AbCd…wXyZ", "state": "confirmed",
               "outcome": "dead" | "still_working" | "sent_to_exchange" | "in_progress",
               "what_to_do": "...", "manage_url": "https://..."}],
     "digest": "...", "idempotency_key": "<incident>/owner/<owner>/owner_notice/<digest>", "at": "..."}

Every call carries the headers ``Idempotency-Key`` (the same value) and, when ``KEYREVOKE_HOOK_SECRET`` is set,
``X-Keyrevoke-Signature: sha256=<hex HMAC-SHA256 of the body>``. Any 2xx is success; 5xx, 429 and
network errors are retried with backoff; other answers fail at once. A retried activity may send the
same request twice: the idempotency key makes it one for the platform. No secret is ever sent.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from keyrevoke.errors import KeyrevokeError
from keyrevoke.owner_notices import OWNER_NOTICE, OwnerNotice
from keyrevoke.private_files import open_private, private_dir


class HookError(KeyrevokeError):
    """The platform did not take a hook request (after retries, or refused it for good)."""


class _RetryableHookError(HookError):
    pass


@dataclass(frozen=True)
class HookRequest:
    """One request to the platform. Holds key references and fingerprints, never a secret."""

    action: str  # "freeze" | "unfreeze" | "notify"
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

    async def send_owner_notice(self, notice: OwnerNotice) -> None:
        """One call per owner listing all their keys (``action``: ``owner_notice``)."""
        ...


def hook_payload(request: HookRequest) -> dict[str, Any]:
    """The JSON document both sinks write for one request."""
    return {
        **asdict(request),
        "idempotency_key": request.idempotency_key,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def owner_notice_payload(notice: OwnerNotice) -> dict[str, Any]:
    """The JSON document both sinks write for one owner notice."""
    return {
        **notice.payload(),
        "idempotency_key": notice.idempotency_key,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


class FileHook:
    """Appends each request as a JSON line to a file, through one handle kept open.

    Each line goes to the file in one unbuffered ``write`` (the file is opened for appending), so a
    line the platform may read is never held in a buffer of ours: a crash loses nothing already sent,
    as when the file was opened and closed per request. A lock keeps concurrent sends' lines whole.
    The write is a few microseconds into the page cache, done in place rather than in a thread.
    ``close`` (the worker calls it when it stops) closes the handle; a later send opens it again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: io.FileIO | None = None
        private_dir(path.parent)

    async def send(self, request: HookRequest) -> None:
        self._append((json.dumps(hook_payload(request)) + "\n").encode("utf-8"))

    async def send_owner_notice(self, notice: OwnerNotice) -> None:
        self._append((json.dumps(owner_notice_payload(notice), ensure_ascii=False) + "\n").encode("utf-8"))

    def _append(self, line: bytes) -> None:
        with self._lock:
            if self._handle is None:
                self._handle = cast(io.FileIO, open_private(self.path, "ab"))
            view = memoryview(line)
            while view:
                written = self._handle.write(view)
                view = view[written:]

    async def close(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


class HttpHook:
    """POSTs each request to the platform's webhook, retried on 5xx, 429 and network errors."""

    def __init__(self, url: str, secret: str | None, timeout_seconds: float = 10.0, attempts: int = 5) -> None:
        self.url = url
        self._secret = secret.encode() if secret else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._attempts = attempts
        self._session: aiohttp.ClientSession | None = None

    async def send(self, request: HookRequest) -> None:
        await self._deliver(json.dumps(hook_payload(request)).encode(), request.idempotency_key, request.action)

    async def send_owner_notice(self, notice: OwnerNotice) -> None:
        body = json.dumps(owner_notice_payload(notice), ensure_ascii=False).encode()
        await self._deliver(body, notice.idempotency_key, OWNER_NOTICE)

    async def _deliver(self, body: bytes, idempotency_key: str, action: str) -> None:
        """POST ``body``, signed, retried on 5xx, 429 and network errors."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self._secret is not None:
            headers["X-Keyrevoke-Signature"] = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            retry=retry_if_exception_type(_RetryableHookError),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            reraise=True,
        ):
            with attempt:
                await self._post(body, headers, action)

    async def _post(self, body: bytes, headers: dict[str, str], action: str) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self.url, data=body, headers=headers) as answer:
                if 200 <= answer.status < 300:
                    return
                error = f"platform hook answered HTTP {answer.status} to {action}"
                if answer.status >= 500 or answer.status == 429:
                    raise _RetryableHookError(error)
                raise HookError(error)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _RetryableHookError(f"platform hook unreachable for {action} ({type(exc).__name__})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


OWNER_MESSAGES: dict[str, str] = {
    "confirmed": "Your API key was revoked at the exchange and the exchange now rejects it. Create a new key.",
    "unconfirmed": "Your API key was deleted at the exchange, but we could not prove it is dead: "
    "check it in the exchange's API management page and delete it if it is still there.",
    "escalated": "The exchange could not revoke your API key through its API; its security team has been "
    "asked to. Delete the key yourself now in the exchange's API management page.",
    "live": "Your API key still works at the exchange. Delete it yourself now in the exchange's API management page.",
    "failed": "We could not revoke your API key. Delete it yourself now in the exchange's API management page.",
    "unfrozen": "The incident response was called off before your API key was revoked; the platform uses it "
    "again. If you believe it leaked, delete it in the exchange's API management page and create a new one.",
}
