"""One trace runs from the client that starts an incident, through its workflows and activities, to
each venue call; and no span carries a secret, a key id or a fingerprint.

The spans go to an in-memory exporter on the process's global tracer provider (the one the Temporal
interceptor and the venue-call spans use); the client has the interceptors ``connect`` gives it when
an OTLP endpoint is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from commander.incidents import start_incident
from keyrevoke.observability.tracing import client_interceptors, tracing_interceptors
from keyrevoke.settings import Settings
from tests.harness import running_workers, stage
from workflows.incident import incident_workflow_id

KEYS = 6


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """The global SDK tracer provider (installed if none is yet) with an in-memory exporter on it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another tracer provider is installed globally"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    # Later tests' spans are dropped instead of piling up in memory.
    exporter.shutdown()


def _texts(span: ReadableSpan) -> list[str]:
    """Everything a span would send to a collector, as strings."""
    texts = [span.name, span.status.description or ""]
    texts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        texts.append(event.name)
        texts += [f"{k}={v}" for k, v in (event.attributes or {}).items()]
    for link in span.links:
        texts += [f"{k}={v}" for k, v in (link.attributes or {}).items()]
    texts += [f"{k}={v}" for k, v in span.resource.attributes.items()]
    return texts


async def test_one_trace_from_incident_start_to_each_venue_call(
    dev_client: Client,
    tmp_path: Path,
    queue_prefix: str,
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    config: Any = dev_client.config()
    client = Client(**{**config, "interceptors": client_interceptors(provider)})
    incident = "trace-1"
    async with stage(tmp_path, KEYS, queue_prefix) as st, running_workers(client, st):
        await start_incident(client, st.ledger, st.settings, incident, [], [])
        await client.get_workflow_handle(incident_workflow_id(incident)).result()
        secrets = st.secrets()
        key_ids = {row.key_id for row in st.rows}
        fingerprints = {row.fingerprint for row in st.rows}
    spans = exporter.get_finished_spans()

    roots = [s for s in spans if s.name == "StartWorkflow:IncidentWorkflow"]
    assert len(roots) == 1, [s.name for s in roots]
    root = roots[0]
    assert root.parent is None
    assert root.context is not None
    in_trace = [s for s in spans if s.context is not None and s.context.trace_id == root.context.trace_id]
    by_id = {s.context.span_id: s for s in in_trace if s.context is not None}
    names = {s.name for s in in_trace}
    for expected in (
        "RunWorkflow:IncidentWorkflow",
        "StartChildWorkflow:VenueWorkflow",
        "RunWorkflow:VenueWorkflow",
        "StartActivity:prepare_batch",
        "RunActivity:prepare_batch",
        "RunActivity:revoke_batch",
        "RunActivity:verify_batch",
        "venue.probe",
        "venue.revoke",
    ):
        assert expected in names, f"{expected} is not in the trace: {sorted(names)}"

    def ancestry(span: ReadableSpan) -> list[str]:
        chain = []
        while span.parent is not None:
            parent = by_id.get(span.parent.span_id)
            assert parent is not None, f"{span.name}: its parent is not in the trace"
            chain.append(parent.name)
            span = parent
        return chain

    venue_spans = [s for s in in_trace if s.name.startswith("venue.")]
    # One revoke per key, and at least a baseline and a verify probe per key.
    assert sum(s.name == "venue.revoke" for s in venue_spans) == KEYS
    assert sum(s.name == "venue.probe" for s in venue_spans) >= 2 * KEYS
    for span in venue_spans:
        chain = ancestry(span)
        # The interceptor hangs a workflow's own spans under the span that started it (its run span is a
        # zero-length sibling): venue call <- activity run <- activity start <- child start <- client start.
        assert chain[0].startswith("RunActivity:"), chain
        assert chain[1].startswith("StartActivity:"), chain
        assert chain[-2:] == ["StartChildWorkflow:VenueWorkflow", "StartWorkflow:IncidentWorkflow"], chain
        attributes = dict(span.attributes or {})
        assert set(attributes) <= {"keyrevoke.venue", "keyrevoke.operation", "error.type"}, attributes
        assert attributes["keyrevoke.venue"] in {"binance", "bybit"}
        assert attributes["keyrevoke.operation"] == span.name.removeprefix("venue.")

    # No secret in any span at all (in this trace or not); no key id or fingerprint on a venue call.
    for span in spans:
        text = "\n".join(_texts(span))
        assert not [s for s in secrets if s in text], f"a secret is in span {span.name}"
    for span in venue_spans:
        text = "\n".join(_texts(span))
        assert not [k for k in key_ids | fingerprints if k in text], f"a key is named in span {span.name}"


def test_no_tracing_without_an_otlp_endpoint() -> None:
    assert tracing_interceptors(Settings(otel_exporter_otlp_endpoint="")) == []
