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
from typing import TypeVar

import opentelemetry.metrics._internal as _metrics_api
from opentelemetry import metrics, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracerProvider,
    ProxyTracerProvider,
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
# it is far cheaper than ``get_*_provider()``, which looks the environment up on every call. Should a
# later API version rename it, the public call decides.
if hasattr(trace, "_TRACER_PROVIDER"):

    def _tracer_provider() -> object | None:
        return trace._TRACER_PROVIDER

else:  # pragma: no cover - an OpenTelemetry API without the global

    def _tracer_provider() -> object | None:
        provider = trace.get_tracer_provider()
        return None if isinstance(provider, ProxyTracerProvider) else provider


if hasattr(_metrics_api, "_METER_PROVIDER"):

    def _meter_provider() -> object | None:
        return _metrics_api._METER_PROVIDER

else:  # pragma: no cover - an OpenTelemetry API without the global

    def _meter_provider() -> object | None:
        provider = metrics.get_meter_provider()
        return None if isinstance(provider, _metrics_api._ProxyMeterProvider) else provider


_tracing = False
_metrics = False


def tracing_on() -> bool:
    """Whether a (not no-op) tracer provider is installed.

    A provider is installed once per process and never removed, so a yes is remembered; until then
    each call looks again (providers are installed after this module is imported).
    """
    global _tracing
    if not _tracing:
        provider = _tracer_provider()
        _tracing = provider is not None and not isinstance(provider, NoOpTracerProvider)
    return _tracing


def metrics_on() -> bool:
    """Whether a (not no-op) meter provider is installed; like ``tracing_on``."""
    global _metrics
    if not _metrics:
        provider = _meter_provider()
        _metrics = provider is not None and not isinstance(provider, NoOpMeterProvider)
    return _metrics


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
