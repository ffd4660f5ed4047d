"""The Temporal SDK's own metrics (``temporal_*``), drained from its ``MetricBuffer`` into a meter.

The SDK records into a ``MetricBuffer`` that someone must empty about every second. The SDK's
``temporalio.contrib.opentelemetry.MetricsExporter`` does that, but it keys its instruments by the
SDK's metric object, and the SDK makes one object per worker: for a gauge, the second worker's
registration under the same name returns the first worker's observable gauge, whose callback knows
only the first worker's values. Pollers, slots and the sticky cache of every other task queue then
never reached ``/metrics``. Here an instrument is keyed by its name, and a gauge's last value by its
attribute set, so every worker's series is reported; one drain serves the process for its lifetime.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from temporalio.common import MetricAttributes
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetric,
    BufferedMetricUpdate,
    MetricBuffer,
)

from keyrevoke.repeating import repeating

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often the buffer is emptied (the SDK asks for about once a second).
DRAIN_INTERVAL_SECONDS = 1.0

AttributeKey = tuple[tuple[str, str | int | float | bool], ...]


class _Gauge:
    """One SDK gauge: the last value of each attribute set, observed at each collection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[AttributeKey, tuple[MetricAttributes, int | float]] = {}

    def set(self, key: AttributeKey, attributes: MetricAttributes, value: int | float) -> None:
        with self._lock:
            self._last[key] = (attributes, value)

    def observe(self, _: CallbackOptions) -> Iterable[Observation]:
        # Called from the reader's thread (a scrape, an OTLP push) while the drain writes: hence the lock.
        with self._lock:
            return [Observation(value, dict(attributes)) for attributes, value in self._last.values()]


class SdkMetricsDrain:
    """Empties a ``MetricBuffer`` into ``meter`` every second while ``running()`` is entered.

    It may be entered again after it was left (workers of one process stopped and started anew);
    its instruments and the gauges' last values stay.
    """

    def __init__(self, buffer: MetricBuffer, meter: Meter) -> None:
        self._buffer = buffer
        self._meter = meter
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._gauges: dict[str, _Gauge] = {}
        # The SDK hands out one attributes object per attribute set and keeps it: its id stands for
        # the set. The object is held here too, so that id cannot be reused by another.
        self._attributes: dict[int, tuple[MetricAttributes, MetricAttributes, AttributeKey]] = {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Drain every second while the block runs, and once more at its end."""
        try:
            async with repeating(self.drain, DRAIN_INTERVAL_SECONDS):
                yield
        finally:
            self.drain()

    def drain(self) -> None:
        """Apply every update the buffer holds now."""
        for update in self._buffer.retrieve_updates():
            try:
                self._apply(update)
            except Exception:
                # One odd update (a new kind of metric, say) must not stop the others from reporting.
                log.exception("cannot report the Temporal SDK metric %s", update.metric.name)

    def _apply(self, update: BufferedMetricUpdate) -> None:
        metric = update.metric
        attributes, key = self._converted(update.attributes)
        if metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            self._counter(metric).add(update.value, attributes)
        elif metric.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
            self._histogram(metric).record(update.value, attributes)
        elif metric.kind == BUFFERED_METRIC_KIND_GAUGE:
            self._gauge(metric).set(key, attributes, update.value)
        else:
            raise ValueError(f"unknown kind of metric {metric.kind}")

    def _converted(self, attributes: MetricAttributes) -> tuple[MetricAttributes, AttributeKey]:
        known = self._attributes.get(id(attributes))
        if known is None:
            converted = dict(attributes)
            known = (attributes, converted, tuple(sorted(converted.items())))
            self._attributes[id(attributes)] = known
        return known[1], known[2]

    def _counter(self, metric: BufferedMetric) -> Counter:
        return _made(self._counters, metric, self._meter.create_counter)

    def _histogram(self, metric: BufferedMetric) -> Histogram:
        return _made(self._histograms, metric, self._meter.create_histogram)

    def _gauge(self, metric: BufferedMetric) -> _Gauge:
        def create(name: str, unit: str, description: str) -> _Gauge:
            gauge = _Gauge()
            self._meter.create_observable_gauge(name, [gauge.observe], unit, description)
            return gauge

        return _made(self._gauges, metric, create)


def _made(made: dict[str, T], metric: BufferedMetric, create: Callable[[str, str, str], T]) -> T:
    """The instrument of ``metric``'s name, created on its first update."""
    instrument = made.get(metric.name)
    if instrument is None:
        instrument = made[metric.name] = create(metric.name, metric.unit or "", metric.description or "")
    return instrument
