"""One venue call, as a span and as request metrics.

Written against the OpenTelemetry API only: until a process installs its providers (a worker does,
see ``keyrevoke.observability``), the span and the instruments are no-ops.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

T = TypeVar("T")

SCOPE = "keyrevoke.venues"

#: Buckets for one request to a venue, in seconds: loopback answers in milliseconds, a slow
#: exchange in seconds, a timeout at the request timeout (10 s by default).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_tracer = trace.get_tracer(SCOPE)
_requests = metrics.get_meter(SCOPE).create_histogram(
    "keyrevoke.venue.request.duration",
    unit="s",
    description="One request to a venue (each retry is a request of its own); its count is the request rate",
    explicit_bucket_boundaries_advisory=REQUEST_BUCKETS,
)


class VenueCall:
    """The span of one venue call (retries included) and the meter of its requests."""

    def __init__(self, span: Span, venue: str, operation: str) -> None:
        self.span = span
        self.venue = venue
        self.operation = operation

    def request(self, call: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``call`` timed as one request, each time it is made (the retry layer makes it again)."""

        async def timed() -> T:
            started = time.monotonic()
            outcome = "error"
            try:
                result = await call()
                outcome = "ok"
                return result
            finally:
                _requests.record(
                    time.monotonic() - started,
                    {"venue": self.venue, "operation": self.operation, "outcome": outcome},
                )

        return timed

    def failed(self, error: BaseException) -> None:
        """Note a failed request on the span, by its class only: messages may quote a venue's answer."""
        self.span.add_event("venue.error", {"error.type": type(error).__name__})


@contextlib.contextmanager
def venue_call(venue: str, operation: str) -> Iterator[VenueCall]:
    """A client span around one call to ``venue`` (``probe``, ``revoke``), child of the current span.

    Its attributes are the venue and the operation and nothing else: no key id, fingerprint or
    secret. Exceptions are recorded by class only, never by message or traceback, for the same reason.
    """
    with _tracer.start_as_current_span(
        f"venue.{operation}",
        kind=SpanKind.CLIENT,
        attributes={"keyrevoke.venue": venue, "keyrevoke.operation": operation},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield VenueCall(span, venue, operation)
        except BaseException as error:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
