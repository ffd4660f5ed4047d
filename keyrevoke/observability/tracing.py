"""Traces: one process's tracer provider, and the Temporal interceptors that carry the trace.

The client of ``incident start`` opens the trace (its ``StartWorkflow`` span); Temporal headers carry
the context to the workflows, their children and activities, on whichever worker runs them, and each
venue call is a span under its activity (``keyrevoke.observability.calls``). Tracing is on when an
OTLP endpoint is configured; then every client made by ``keyrevoke.temporal_client.connect`` has the
interceptors, and workers inherit them from their client.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio import client
from temporalio.contrib.opentelemetry import TracingInterceptor

from keyrevoke.settings import Settings

SERVICE_NAME = "keyrevoke"
#: How long a client waits, after starting a workflow, for its span to reach the collector.
EXPORT_AFTER_START_MILLIS = 5000

_lock = threading.Lock()
_provider: TracerProvider | None = None


def resource() -> Resource:
    """The process's resource; ``OTEL_RESOURCE_ATTRIBUTES`` (pod, node, ...) adds to it."""
    return Resource.create({"service.name": SERVICE_NAME})


def install_tracing(settings: Settings) -> TracerProvider:
    """The process's tracer provider exporting by OTLP, made and installed globally on first use.

    Global because the Temporal interceptor and the venue-call spans use the global tracer; one per
    process because the global provider can be set once. Later calls return it whatever their settings.
    """
    global _provider
    with _lock:
        if _provider is None:
            # Imported here: the gRPC exporter is slow to import and only needed when tracing is on.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider = TracerProvider(resource=resource())
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint))
            )
            trace.set_tracer_provider(provider)
            _provider = provider
        return _provider


def tracing_interceptors(settings: Settings) -> list[client.Interceptor]:
    """The client interceptors that trace, or none when no OTLP endpoint is configured."""
    if not settings.otel_exporter_otlp_endpoint:
        return []
    return client_interceptors(install_tracing(settings))


def client_interceptors(provider: TracerProvider) -> list[client.Interceptor]:
    """Temporal's tracing interceptor (on the global tracer), behind one that exports the start span.

    The export one comes first, so it wraps the tracing one and runs after the start span has ended:
    a command-line client exits right after starting an incident, without the interpreter's teardown,
    and the batch processor would lose the trace's root span.
    """
    return [_ExportAfterStart(provider), TracingInterceptor()]


def flush_traces() -> None:
    """Export the spans the process's provider still holds (a worker calls it when it stops)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(EXPORT_AFTER_START_MILLIS)


class _ExportAfterStart(client.Interceptor):
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _ExportAfterStartOutbound(next, self.provider)


class _ExportAfterStartOutbound(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, provider: TracerProvider) -> None:
        super().__init__(next)
        self.provider = provider

    async def start_workflow(self, input: client.StartWorkflowInput) -> client.WorkflowHandle[Any, Any]:
        try:
            return await super().start_workflow(input)
        finally:
            await asyncio.to_thread(self.provider.force_flush, EXPORT_AFTER_START_MILLIS)
