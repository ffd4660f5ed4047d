"""Metrics: what a worker serves on ``/metrics`` for Prometheus and pushes by OTLP when configured.

One ``Observability`` per process (``for_process``) owns an OpenTelemetry meter provider with two
readers: a Prometheus reader on a private registry, rendered by the worker's HTTP server, and an
OTLP/gRPC reader when ``KEYREVOKE_OTEL_EXPORTER_OTLP_ENDPOINT`` is set. Into it go:

- the batch activities' reports (``OtelTelemetry``, the ``Telemetry`` they call);
- the venue calls' request metrics (``keyrevoke.observability.calls``, through the global provider);
- the keys-by-state gauge, read from the ledger at each collection (control workers only);
- the Temporal SDK's own metrics (``temporal_*``): the client's runtime records them into a
  ``MetricBuffer`` that ``SdkMetricsDrain`` (``keyrevoke.observability.sdk_metrics``) empties into
  this provider every second. So they share the worker's one port
  and one OTLP stream (the Kubernetes probes, Service, ServiceMonitor and NetworkPolicy know port
  9464 only), where the SDK's own Prometheus server would need a second port.

Prometheus names follow from the OpenTelemetry ones: dots become underscores, a unit ``s`` adds
``_seconds``, a counter adds ``_total`` (``keyrevoke.key.transitions`` -> ``keyrevoke_key_transitions_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import CollectorRegistry, generate_latest
from temporalio.client import Client
from temporalio.runtime import MetricBuffer, MetricBufferDurationFormat, Runtime, TelemetryConfig
from temporalio.service import ServiceClient

from keyrevoke.errors import KeyRejected, RateLimited, RevokeRefused, UnsupportedVenue, VenueBanned, VenueUnavailable
from keyrevoke.ledger import Ledger
from keyrevoke.observability.sdk_metrics import SdkMetricsDrain
from keyrevoke.observability.tracing import resource
from keyrevoke.settings import Settings
from keyrevoke.states import KeyState

log = logging.getLogger(__name__)

METER = "keyrevoke"
#: The Temporal SDK's meter in our provider.
SDK_METER = "temporalio"

#: One revoke request, from sending it to the venue's acceptance.
REVOKE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: From a venue's acceptance of a revoke to the probe that confirms it: probes run every few
#: seconds, and some venues keep a deleted key working for minutes.
CONFIRM_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: The SDK's latencies (task schedule-to-start, execution, RPCs), recorded in seconds.
SDK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: The venue error classes a batch can see; counters start at zero for each, so a first error shows
#: as an increase and alerts on them have series to evaluate before anything went wrong.
VENUE_ERRORS = tuple(
    cls.__name__ for cls in (KeyRejected, RevokeRefused, UnsupportedVenue, VenueUnavailable, RateLimited, VenueBanned)
)
#: Venue answers that mean "slow down" (HTTP 429 and kin) or "you are banned" (Binance's 418).
RATE_LIMIT_ANSWERS = {RateLimited.__name__: "rate_limited", VenueBanned.__name__: "banned"}

#: How many SDK metric updates the buffer holds between two drains (one per second).
SDK_BUFFER_SIZE = 100_000


class OtelTelemetry:
    """The batch activities' reports as OpenTelemetry instruments (see ``keyrevoke.telemetry``)."""

    def __init__(self, meter: Meter) -> None:
        self.transitions = meter.create_counter(
            "keyrevoke.key.transitions", unit="{transition}", description="Keys that entered a state, by venue"
        )
        self.escalations = meter.create_counter(
            "keyrevoke.escalations",
            unit="{key}",
            description="Keys escalated to the venue's security team (it refused or cannot revoke them by API)",
        )
        self.revoke_duration = meter.create_histogram(
            "keyrevoke.revoke.duration",
            unit="s",
            description="One revoke request, from sending it to the venue's acceptance",
            explicit_bucket_boundaries_advisory=REVOKE_BUCKETS,
        )
        self.confirm_duration = meter.create_histogram(
            "keyrevoke.confirm.duration",
            unit="s",
            description="From the venue's acceptance of a revoke to the probe that confirms the key is dead",
            explicit_bucket_boundaries_advisory=CONFIRM_BUCKETS,
        )
        self.venue_errors = meter.create_counter(
            "keyrevoke.venue.errors", unit="{error}", description="Classified venue errors seen by the batches"
        )
        self.rate_limit_answers = meter.create_counter(
            "keyrevoke.venue.rate_limit_answers",
            unit="{answer}",
            description="Venue answers asking us to slow down (kind=rate_limited) or banning us (kind=banned)",
        )

    def add_venues(self, venues: Iterable[str]) -> None:
        """Start every counter of ``venues`` at zero (a counter first seen at 1 shows no increase)."""
        for venue in venues:
            for state in KeyState:
                self.transitions.add(0, {"venue": venue, "state": state.value})
            self.escalations.add(0, {"venue": venue})
            for error in VENUE_ERRORS:
                self.venue_errors.add(0, {"venue": venue, "error_type": error})
            for kind in RATE_LIMIT_ANSWERS.values():
                self.rate_limit_answers.add(0, {"venue": venue, "kind": kind})

    def key_transition(self, venue: str, state: str) -> None:
        self.transitions.add(1, {"venue": venue, "state": state})
        if state == KeyState.ESCALATED:
            self.escalations.add(1, {"venue": venue})

    def revoke_latency(self, venue: str, seconds: float) -> None:
        self.revoke_duration.record(seconds, {"venue": venue})

    def confirm_latency(self, venue: str, seconds: float) -> None:
        self.confirm_duration.record(seconds, {"venue": venue})

    def venue_error(self, venue: str, error: str) -> None:
        self.venue_errors.add(1, {"venue": venue, "error_type": error})
        kind = RATE_LIMIT_ANSWERS.get(error)
        if kind:
            self.rate_limit_answers.add(1, {"venue": venue, "kind": kind})


class Observability:
    """One process's meter provider, its Prometheus exposition, and the Temporal SDK's metrics."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        readers: list[MetricReader] = [
            # No otel_scope_* labels: every series would carry them, and the metric names already say whose they are.
            PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        ]
        if settings.otel_exporter_otlp_endpoint:
            # Imported here: the gRPC exporter is slow to import and only needed when OTLP is on.
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=settings.otel_exporter_otlp_endpoint),
                    export_interval_millis=settings.otel_export_interval_seconds * 1000,
                )
            )
        self.meter_provider = MeterProvider(
            resource=resource(),
            metric_readers=readers,
            # The SDK's default buckets are meant for milliseconds; its durations arrive in seconds.
            views=[
                View(
                    instrument_type=Histogram,
                    meter_name=SDK_METER,
                    aggregation=ExplicitBucketHistogramAggregation(SDK_BUCKETS),
                )
            ],
        )
        self.meter = self.meter_provider.get_meter(METER)
        self.telemetry = OtelTelemetry(self.meter)
        self.finished_within_seconds = settings.metrics_finished_incident_seconds
        self._ledgers: list[Ledger] = []
        self._lock = threading.Lock()
        self.meter.create_observable_gauge(
            "keyrevoke.keys",
            callbacks=[self._observe_keys],
            unit="{key}",
            description="Keys of each running (or lately finished) incident, by venue and state; control workers only",
        )
        self._request_limit = self.meter.create_gauge(
            "keyrevoke.venue.request.limit",
            unit="{request}/s",
            description="Requests per second all the venue's workers together allow themselves, their slots "
            "shared through the ledger (KEYREVOKE_VENUE_REQUESTS_PER_SECOND); every worker reports the same value",
        )
        self._activity_limit = self.meter.create_gauge(
            "keyrevoke.venue.activity.limit",
            unit="{activity}/s",
            description="Batch activities per second the Temporal server allows on the venue's task queue, "
            "for all its workers together (KEYREVOKE_VENUE_ACTIVITIES_PER_SECOND)",
        )
        self._runtime: Runtime | None = None
        self._sdk_drain: SdkMetricsDrain | None = None
        self._sdk_draining: contextlib.AbstractAsyncContextManager[None] | None = None
        self._running = 0

    # --- what the workers report --------------------------------------------------------------

    def serve_venues(self, venues: Iterable[str], settings: Settings) -> OtelTelemetry:
        """The telemetry for a worker of ``venues``, with their counters at zero and their limits set."""
        venues = list(venues)
        self.telemetry.add_venues(venues)
        for venue in venues:
            self._request_limit.set(settings.venue_requests_per_second, {"venue": venue})
            self._activity_limit.set(settings.venue_activities_per_second, {"venue": venue})
        return self.telemetry

    def watch_ledger(self, ledger: Ledger) -> Callable[[], None]:
        """Report ``ledger``'s keys by state on ``keyrevoke_keys`` until the returned function is called."""
        with self._lock:
            self._ledgers.append(ledger)

        def unwatch() -> None:
            with self._lock:
                self._ledgers.remove(ledger)

        return unwatch

    def _observe_keys(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            ledgers = list(self._ledgers)
        observations: list[Observation] = []
        for ledger in ledgers:
            try:
                counts = ledger.active_counts(self.finished_within_seconds)
            except Exception:
                # A ledger that cannot answer now must not fail the whole scrape: the gauge is
                # missing for this collection, and `up` and the other metrics still report.
                log.warning("cannot read key counts from the ledger", exc_info=True)
                continue
            # Every state of every incident and venue, zeros included: "no live key" is a 0 on the
            # dashboard and a series the alert rules can evaluate, not an absent series.
            for incident, venue in sorted({(incident, venue) for incident, venue, _ in counts}):
                for state in KeyState:
                    attributes = {"incident": incident, "venue": venue, "state": state.value}
                    observations.append(Observation(counts.get((incident, venue, state.value), 0), attributes))
        return observations

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format. Blocking: the keys gauge reads the ledger."""
        return generate_latest(self.registry)

    # --- the Temporal SDK's metrics -----------------------------------------------------------

    def temporal_runtime(self) -> Runtime:
        """The Temporal runtime whose metrics this process reports (made on first use: one per process)."""
        with self._lock:
            if self._runtime is None:
                buffer = MetricBuffer(SDK_BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
                self._runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
                self._sdk_drain = SdkMetricsDrain(buffer, self.meter_provider.get_meter(SDK_METER))
            return self._runtime

    async def on_temporal_runtime(self, temporal: Client) -> Client:
        """``temporal`` itself if it runs on ``temporal_runtime()``, else a client like it that does.

        A client's runtime is fixed when it connects, and the commands connect before they know they
        will run workers; the copy connects once more, with the same address, TLS and credentials.
        """
        runtime = self.temporal_runtime()
        if temporal.service_client.config.runtime is runtime:
            return temporal
        service = await ServiceClient.connect(dataclasses.replace(temporal.service_client.config, runtime=runtime))
        config = temporal.config()
        config["service_client"] = service
        return Client(**config)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Drain the SDK's metrics into this provider while the block runs; push what is left at its end."""
        self.temporal_runtime()
        assert self._sdk_drain is not None
        # Workers of one process share the drain (a buffer has one reader): the first starts it, the last stops it.
        if self._running == 0:
            self._sdk_draining = self._sdk_drain.running()
            await self._sdk_draining.__aenter__()
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            if self._running == 0 and self._sdk_draining is not None:
                draining, self._sdk_draining = self._sdk_draining, None
                await draining.__aexit__(None, None, None)
                # Blocking: with OTLP on, it pushes what the periodic reader has not sent yet.
                await asyncio.to_thread(self.meter_provider.force_flush)


_process_lock = threading.Lock()
_process: Observability | None = None


def for_process(settings: Settings) -> Observability:
    """The process's ``Observability``, made on first use and installed as the global meter provider.

    Global so that instrumentation written against the OpenTelemetry API (the venue calls) reports
    into it; once per process because a global provider can be set once. Later calls return it,
    whatever their settings.
    """
    global _process
    with _process_lock:
        if _process is None:
            _process = Observability(settings)
            metrics.set_meter_provider(_process.meter_provider)
        return _process
