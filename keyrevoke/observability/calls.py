"""One venue call, as a span and as request metrics.

Written against the OpenTelemetry API only: until a process installs its providers (a worker does,
see ``keyrevoke.observability``), the span and the instruments are no-ops. Even a no-op span (its
context attached and detached) and a no-op histogram record cost a worker's CPU on every call, so
with no provider installed they are skipped altogether (``tracing_on``, ``metrics_on``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import TypeVar

import opentelemetry.metrics._internal as _metrics_api
from opentelemetry import metrics, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

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

# Whether providers are installed. The API keeps the installed one in a module global (None until
# then; one named by OTEL_PYTHON_*_PROVIDER was loaded by ``get_tracer``/``get_meter`` above); reading
# it is far cheaper than ``get_*_provider()``, which looks the environment up on every call.
_TRACING = (trace, "_TRACER_PROVIDER", NoOpTracerProvider)
_METRICS = (_metrics_api, "_METER_PROVIDER", NoOpMeterProvider)
_seen_on: set[str] = set()


def _installed(api: ModuleType, global_name: str, no_op: type) -> bool:
    """Whether a (not no-op) provider is installed through ``api``.

    A provider is installed once per process and never removed, so a yes is remembered; until then
    each call looks again (providers are installed after this module is imported). An API version
    without the global counts as on: the calls then do the (correct, slower) telemetry work.
    """
    if global_name in _seen_on:
        return True
    if hasattr(api, global_name):
        provider = getattr(api, global_name)
        if provider is None or isinstance(provider, no_op):
            return False
    _seen_on.add(global_name)
    return True


def tracing_on() -> bool:
    """Whether a (not no-op) tracer provider is installed."""
    return _installed(*_TRACING)


def metrics_on() -> bool:
    """Whether a (not no-op) meter provider is installed."""
    return _installed(*_METRICS)


class VenueCall:
    """The span of one venue call (retries included) and the meter of its requests."""

    def __init__(self, span: Span, venue: str, operation: str) -> None:
        self.span = span
        self.venue = venue
        self.operation = operation

    def request(self, call: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``call`` timed as one request, each time it is made (the retry layer makes it again).

        Without a meter provider ``call`` itself: there is nothing to time it for.
        """
        if not metrics_on():
            return call

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
        if self.span is INVALID_SPAN:
            return
        self.span.add_event("venue.error", {"error.type": type(error).__name__})


@contextlib.contextmanager
def venue_call(venue: str, operation: str) -> Iterator[VenueCall]:
    """A client span around one call to ``venue`` (``probe``, ``revoke``), child of the current span.

    Its attributes are the venue and the operation and nothing else: no key id, fingerprint or
    secret. Exceptions are recorded by class only, never by message or traceback, for the same reason.
    Without a tracer provider there is no span at all (not even a no-op one made current).
    """
    if not tracing_on():
        yield VenueCall(INVALID_SPAN, venue, operation)
        return
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
