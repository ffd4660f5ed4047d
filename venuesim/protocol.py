"""What a venue module provides, and the request pipeline every venue shares.

A venue module subclasses ``VenueProtocol``: it lists its endpoints, verifies requests the way its
venue does, and renders the shared faults (rate limit, ban, 5xx) in its venue's own wire format. The
pipeline here applies the scenario's faults in front of every endpoint, so fault logic is written
once for all venues.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import parse_qsl

from aiohttp import web

from venuesim.faults import Fate, FaultGate, LostAnswer, Verdict
from venuesim.state import SimKey, VenueState
from venuesim.stats import SimStats

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: status recorded in the statistics for a request whose connection was dropped on purpose
DROPPED = 0


class Refusal(Exception):
    """Raised by a venue module to answer at once with ``response`` (a refused request)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the venue's own path, e.g. "/sapi/v1/account/apiRestrictions"
    handler: Handler
    weight: int = 1  # what the request costs in the venue's rate-limit accounting


class VenueProtocol(ABC):
    """One venue's REST protocol, served at the root of its own port (the venue's own paths)."""

    name: ClassVar[str]

    def __init__(self, state: VenueState, gate: FaultGate, stats: SimStats) -> None:
        self.state = state
        self.gate = gate
        self.stats = stats

    # --- what each venue module provides ----------------------------------------------------------

    @abstractmethod
    def endpoints(self) -> Iterable[Endpoint]:
        """The venue's routes, with their handlers."""

    @abstractmethod
    def render_rate_limited(self, retry_after: int) -> web.Response:
        """The venue's answer to a request over its rate limit."""

    def render_unavailable(self, status: int = 503) -> web.Response:
        """A 5xx from the venue's front door: an HTML page, as load balancers and gateways send."""
        reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
        title = f"{status} {reason.get(status, 'Server Error')}"
        body = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
        return web.Response(status=status, text=body, content_type="text/html")

    def render_banned(self, retry_after: int) -> web.Response:
        """The venue's answer while the caller is banned for ignoring rate limits.

        By default HTTP 403 from the front door (a CDN or firewall page, not JSON): an IP blocked for a
        while, for venues whose documentation names no ban answer of their own.
        """
        title = "403 Forbidden"
        body = (
            f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
            "<p>Access denied: too many requests from this address.</p></center></body></html>"
        )
        return web.Response(status=403, text=body, content_type="text/html")

    def decorate(self, response: web.StreamResponse) -> None:  # noqa: B027 - optional hook
        """Add the venue's own headers (rate-limit usage and the like) to every answer."""

    def validate_key(self, key: SimKey) -> None:  # noqa: B027 - optional hook
        """Refuse, at start-up, a key this venue could never have issued."""

    # --- shared machinery ----------------------------------------------------------------------------

    def register(self, router: web.UrlDispatcher) -> None:
        """Add the venue's endpoints, each behind the shared fault pipeline, at the venue's own paths."""
        for endpoint in self.endpoints():
            router.add_route(endpoint.method, endpoint.path, self._pipeline(endpoint))

    def _pipeline(self, endpoint: Endpoint) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.stats.record_request(self.name, endpoint.path)
            await self.gate.delay()
            response = await self._imposed(self.gate.admit(endpoint.weight))
            if response is None:
                try:
                    response = await endpoint.handler(request)
                except Refusal as refusal:
                    response = refusal.response
                except _Dropped:
                    return self._drop(request)
            self.decorate(response)
            self.stats.record_status(self.name, response.status)
            return response

        return handle

    async def _imposed(self, verdict: Verdict) -> web.StreamResponse | None:
        """The answer the scenario imposes instead of the endpoint's, if any."""
        if verdict.fate is Fate.BANNED:
            self.stats.banned[self.name] += 1
            return self.render_banned(verdict.retry_after)
        if verdict.fate is Fate.RATE_LIMITED:
            self.stats.rate_limited[self.name] += 1
            return self.render_rate_limited(verdict.retry_after)
        if verdict.fate is Fate.HANG:
            # the client gives up first; its disconnect cancels this handler
            await asyncio.sleep(self.gate.faults.hang_seconds)
            return self.render_unavailable(504)
        if verdict.fate is Fate.ERROR:
            return self.render_unavailable(503)
        return None

    def _drop(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        self.stats.record_status(self.name, DROPPED)
        return web.Response()  # never sent: the connection is gone

    def deleted(self, answer: web.Response) -> web.Response:
        """Return the answer to a delete that was carried out, unless the scenario loses it."""
        lost = self.gate.lose_delete_answer()
        if lost is None:
            return answer
        self.stats.lost_answers[self.name] += 1
        if lost is LostAnswer.ERROR:
            return self.render_unavailable(502)
        raise _Dropped


class _Dropped(Exception):
    """The connection of the current request is to be closed without an answer."""


# --- parsing shared by venue modules ----------------------------------------------------------------


def as_int(value: str | None) -> int | None:
    """``value`` as an integer; None if it is missing or not one."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def without_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` without its ``signature=`` parameter, and the signature (the last one if repeated)."""
    kept: list[str] = []
    signature = None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def total_params(query_string: str, body: str) -> tuple[str, str | None, dict[str, str]]:
    """A SIGNED request's *totalParams*, as Binance defines them and MEXC copies them.

    Returns what the signature covers (the query string concatenated with the body, each without
    its ``signature=``), the signature (the query string's if it has one, else the body's), and the
    parameters (one sent in both places takes the query string's value).
    """
    query, query_signature = without_signature(query_string)
    body, body_signature = without_signature(body)
    signature = query_signature if query_signature is not None else body_signature
    params = dict(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(query, keep_blank_values=True))
    return query + body, signature, params
