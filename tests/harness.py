"""Building blocks for flow tests: a sample inventory in a ledger, the simulator serving it, workers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from commander.inventory_import import import_inventory
from commander.sample import write_sample
from commander.simulate import simulator_for
from keyrevoke.inventory import InventoryRow, read_inventory
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.models import IncidentInput, IncidentSummary
from keyrevoke.operators import sign_action
from keyrevoke.settings import Settings
from venuesim import Scenario, VenueSimulator
from workers.runner import CONTROL, workers_for
from workflows.incident import IncidentWorkflow, incident_workflow_id


def address_of(client: Client) -> str:
    """The host:port a client talks to (the session's dev server), for a stage's settings."""
    return client.service_client.config.target_host


async def until(predicate: Callable[[], object | Awaitable[object]], seconds: float = 60.0) -> None:
    """Wait until ``predicate()`` (plain or awaitable) is true, asking every 0.1 s; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not reached in {seconds} s")
        await asyncio.sleep(0.1)


@dataclass
class Stage:
    """A ledger with a sample inventory, the simulator serving it, and settings pointing at both."""

    settings: Settings
    ledger: Ledger
    simulator: VenueSimulator
    rows: list[InventoryRow]
    inventory: Path
    masters: Path

    def secrets(self) -> list[str]:
        """Every string that must never appear outside the ledger's sealed columns."""
        values = [v for row in self.rows for v in (row.api_key, row.secret, row.passphrase) if v]
        for entry in json.loads(self.masters.read_text()).values():
            values += [entry["api_key"], entry["secret"]]
        return values


@contextlib.asynccontextmanager
async def stage(
    tmp: Path,
    keys: int,
    queue_prefix: str,
    temporal_address: str = "127.0.0.1:7233",
    scenario: dict[str, Any] | None = None,
    venues: tuple[str, ...] = ("binance", "bybit"),
    **overrides: Any,
) -> AsyncIterator[Stage]:
    inventory, masters = write_sample(tmp / "sample", keys, venues=venues)
    scenario_file = None
    if scenario is not None:
        scenario_file = tmp / "scenario.json"
        scenario_file.write_text(json.dumps(scenario))
    simulator, _ = simulator_for(inventory, masters, scenario_file)
    await simulator.start()
    values: dict[str, Any] = {
        "state_dir": tmp / "state",
        "temporal_address": temporal_address,
        "task_queue_prefix": queue_prefix,
        "master_credentials_file": masters,
        "venue_urls": simulator.venue_urls,
        "worker_http_port": 0,
        "verify_interval_seconds": 0.5,
        "verify_deadline_seconds": 30,
    }
    settings = Settings(**{**values, **overrides})
    ledger = ledger_from_settings(settings)
    try:
        result = import_inventory(ledger, inventory)
        assert not result.errors, result.errors
        rows, _ = read_inventory(inventory)
        yield Stage(settings, ledger, simulator, rows, inventory, masters)
    finally:
        ledger.close()
        await simulator.stop()


@contextlib.asynccontextmanager
async def running_workers(client: Client, stage: Stage) -> AsyncIterator[None]:
    """Every queue's worker, in this process, until the block ends."""
    venues = sorted({row.venue for row in stage.rows})
    async with (
        workers_for(client, stage.settings, [CONTROL, *venues], stage.ledger) as workers,
        contextlib.AsyncExitStack() as stack,
    ):
        for worker in workers:
            await stack.enter_async_context(worker)
        yield


async def run_incident(client: Client, stage: Stage, incident_id: str, **timing: Any) -> IncidentSummary:
    """Record and run a whole incident over the stage's keys with in-process workers.

    ``timing`` overrides the incident's defaults (small batches; verify and escalation timers meant
    for the time-skipping server, which skips them).
    """
    stage.ledger.create_incident(incident_id, [], [], "tester")
    values: dict[str, Any] = {
        "batch_size": 5,
        "batches_in_flight": 3,
        "verify_interval_seconds": 5,
        "verify_deadline_seconds": 300,
        "escalation_wait_seconds": 600,
        "escalation_probe_interval_seconds": 120,
    }
    # Signed with the stage's own operator key (the embedded set-up makes and registers one).
    signed = sign_action(stage.settings, incident_id, "start")
    params = IncidentInput(incident_id, stage.settings.task_queue_prefix, **{**values, **timing}, start_signed=signed)
    async with running_workers(client, stage):
        summary: IncidentSummary = await client.execute_workflow(
            IncidentWorkflow.run,
            params,
            id=incident_workflow_id(incident_id),
            task_queue=stage.settings.control_queue,
        )
    return summary


__all__ = ["Scenario", "Stage", "address_of", "run_incident", "running_workers", "stage", "until"]
