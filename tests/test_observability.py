"""The metrics a worker exposes: their Prometheus names and labels, the keys gauge read from the
ledger (on both ledger back ends), and the /metrics route of the worker's HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from commander.devserver import free_port
from commander.inventory_import import import_inventory
from commander.sample import write_sample
from keyrevoke.crypto import KeyEncryptionKey, SecretBox
from keyrevoke.ledger import Ledger, open_ledger
from keyrevoke.ledger.store import Transition
from keyrevoke.observability.metrics import Observability
from keyrevoke.settings import Settings
from keyrevoke.states import KeyState
from workers.health import HealthServer

KEK = KeyEncryptionKey(bytes(range(32)))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A ledger on each back end in turn (``ledger_url`` from conftest.py)."""
    opened = open_ledger(ledger_url, SecretBox(KEK))
    try:
        yield opened
    finally:
        opened.close()


def _incident(ledger: Ledger, tmp_path: Path, incident_id: str, keys: int) -> list[tuple[str, str]]:
    """An incident over a fresh sample inventory; returns its (key_id, venue) pairs."""
    inventory, _ = write_sample(tmp_path / incident_id, keys)
    assert not import_inventory(ledger, inventory).errors
    ledger.create_incident(incident_id, [], [], "tester")
    ledger.plan_incident(incident_id)
    return [(k.key_id, k.venue) for k in ledger.key_statuses(incident_id)]


def _samples(exposition: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    matching = [value for found, value in samples.get(name, []) if labels.items() <= found.items()]
    assert len(matching) == 1, (name, labels, samples.get(name))
    return matching[0]


def test_active_counts_keep_running_and_lately_finished_incidents(ledger: Ledger, tmp_path: Path) -> None:
    keys = _incident(ledger, tmp_path, "inc-a", 4)
    counts = ledger.active_counts(3600)
    assert sum(counts.values()) == 4
    assert {state for _, _, state in counts} == {KeyState.PENDING.value}

    # Every key final: still shown while the window lasts, gone after it.
    ledger.apply(
        "inc-a",
        [Transition(key_id, venue, KeyState.CONFIRMED, (KeyState.PENDING,), "key.confirmed") for key_id, venue in keys],
    )
    counts = ledger.active_counts(3600)
    assert {(incident, state) for incident, _, state in counts} == {("inc-a", "confirmed")}
    assert sum(counts.values()) == 4
    time.sleep(0.01)
    assert ledger.active_counts(0) == {}

    # One key not final keeps its whole incident, however old.
    key_id, venue = keys[0]
    ledger.apply("inc-a", [Transition(key_id, venue, KeyState.LIVE, (KeyState.CONFIRMED,), "key.live")])
    ledger.apply("inc-a", [Transition(key_id, venue, KeyState.REVOKED, (KeyState.LIVE,), "key.revoked")])
    time.sleep(0.01)
    assert sum(ledger.active_counts(0).values()) == 4


def test_metric_names_labels_and_the_keys_gauge(ledger: Ledger, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, venue_requests_per_second=7, venue_activities_per_second=3)
    observability = Observability(settings)
    telemetry = observability.serve_venues(["binance", "bybit"], settings)
    telemetry.key_transition("binance", "revoked")
    telemetry.key_transition("bybit", "escalated")
    telemetry.revoke_latency("binance", 0.04)
    telemetry.confirm_latency("binance", 3.0)
    telemetry.venue_error("binance", "VenueBanned")
    telemetry.venue_error("bybit", "RateLimited")
    keys = _incident(ledger, tmp_path, "inc-b", 4)
    unwatch = observability.watch_ledger(ledger)

    samples = _samples(observability.exposition())
    assert _value(samples, "keyrevoke_key_transitions_total", venue="binance", state="revoked") == 1
    assert _value(samples, "keyrevoke_key_transitions_total", venue="binance", state="confirmed") == 0
    assert _value(samples, "keyrevoke_escalations_total", venue="bybit") == 1
    assert _value(samples, "keyrevoke_revoke_duration_seconds_count", venue="binance") == 1
    assert _value(samples, "keyrevoke_revoke_duration_seconds_bucket", venue="binance", le="0.05") == 1
    assert _value(samples, "keyrevoke_confirm_duration_seconds_sum", venue="binance") == 3.0
    assert _value(samples, "keyrevoke_venue_errors_total", venue="binance", error_type="VenueBanned") == 1
    assert _value(samples, "keyrevoke_venue_errors_total", venue="binance", error_type="RateLimited") == 0
    assert _value(samples, "keyrevoke_venue_rate_limit_answers_total", venue="binance", kind="banned") == 1
    assert _value(samples, "keyrevoke_venue_rate_limit_answers_total", venue="bybit", kind="rate_limited") == 1
    assert _value(samples, "keyrevoke_venue_request_limit_per_second", venue="binance") == 7
    assert _value(samples, "keyrevoke_venue_activity_limit_per_second", venue="bybit") == 3
    # Every state of the incident's venues, zeros included.
    venues = {venue for _, venue in keys}
    gauge = samples["keyrevoke_keys"]
    assert len(gauge) == len(venues) * len(KeyState)
    assert sum(value for labels, value in gauge if labels["state"] == "pending") == 4
    assert {labels["incident"] for labels, _ in gauge} == {"inc-b"}
    # No label carries a key.
    assert not [labels for labels, _ in gauge if set(labels) != {"incident", "venue", "state"}]

    unwatch()
    assert "keyrevoke_keys" not in _samples(observability.exposition())


async def test_metrics_route_of_the_worker_http_server(tmp_path: Path) -> None:
    observability = Observability(Settings(state_dir=tmp_path))
    observability.serve_venues(["binance"], Settings(state_dir=tmp_path))
    with_metrics = HealthServer(free_port(), "127.0.0.1", metrics=observability.exposition)
    without = HealthServer(free_port(), "127.0.0.1")
    await with_metrics.start()
    await without.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{with_metrics.port}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert "keyrevoke_key_transitions_total" in await response.text()
            async with session.get(f"http://127.0.0.1:{without.port}/metrics") as response:
                assert response.status == 404
    finally:
        await with_metrics.stop()
        await without.stop()


class _Collector(metrics_service_pb2_grpc.MetricsServiceServicer):
    """The metrics half of an OpenTelemetry collector: remembers the names it receives."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                self.names.update(metric.name for metric in scope.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def test_metrics_are_pushed_by_otlp_when_an_endpoint_is_set(tmp_path: Path) -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        settings = Settings(state_dir=tmp_path, otel_exporter_otlp_endpoint=f"http://127.0.0.1:{port}")
        observability = Observability(settings)
        observability.serve_venues(["binance"], settings).key_transition("binance", "confirmed")
        assert observability.meter_provider.force_flush(10_000)
        observability.meter_provider.shutdown()
    finally:
        server.stop(None)
    assert {"keyrevoke.key.transitions", "keyrevoke.venue.request.limit"} <= collector.names


async def _until_pollers_of(observability: Observability, queues: set[str]) -> set[str]:
    """The task queues with a ``temporal_num_pollers`` series, once ``queues`` are among them (20 s at most)."""
    reported: set[str] = set()
    for _ in range(100):
        pollers = _samples(observability.exposition()).get("temporal_num_pollers", [])
        reported = {labels["task_queue"] for labels, _ in pollers}
        if queues <= reported:
            break
        await asyncio.sleep(0.2)
    return reported


async def test_sdk_gauges_of_every_worker_reach_the_metrics_also_after_a_restart(
    dev_client: Client, tmp_path: Path, queue_prefix: str
) -> None:
    observability = Observability(Settings(state_dir=tmp_path))
    client = await observability.on_temporal_runtime(dev_client)

    async def run_workers_on(queues: set[str]) -> set[str]:
        workers = [Worker(client, task_queue=queue, activities=[_noop]) for queue in sorted(queues)]
        async with observability.running(), contextlib.AsyncExitStack() as stack:
            for worker in workers:
                await stack.enter_async_context(worker)
            return await _until_pollers_of(observability, queues)

    first = {f"{queue_prefix}-{n}" for n in range(3)}
    assert first <= await run_workers_on(first), "every worker's pollers are reported, not the first one's only"
    # Workers of the same process started anew (the drain left and entered again) still report.
    second = {f"{queue_prefix}-again-{n}" for n in range(2)}
    assert second <= await run_workers_on(second)


@activity.defn(name="noop")
async def _noop() -> None:
    """An activity for workers that only need to poll."""
