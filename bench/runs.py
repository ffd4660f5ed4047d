"""One run of each kind: keyrevoke's incident, the plain asyncio script, and the workflow-per-key baseline.

Every run builds its own world (sample inventory, ledger, simulator process, dev server, worker
processes), times only the work itself, and returns an ``Outcome``: plain data for the results file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.procs import (
    SimProcess,
    WorkerProcess,
    children_named,
    cpu_seconds,
    keyrevoke_cli,
    run_measured,
    settings_env,
    status_kib,
    wait_for_pollers,
)
from commander.devserver import DevServerConfig, dev_server, free_port
from commander.inventory_import import import_inventory
from commander.sample import write_sample
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.ledger.store import Ledger
from keyrevoke.payload_codec import iter_payloads
from keyrevoke.settings import Settings
from workflows.incident import incident_workflow_id, venue_workflow_id

#: throughput without venue limits: the simulator has none; keyrevoke keeps its default request pace (its
#: pacer has no off switch) with the server's activity rate out of the way
UNLIMITED: dict[str, Any] = {"venue_activities_per_second": 100_000}


@dataclass
class World:
    root: Path
    inventory: Path
    masters: Path
    sim: SimProcess
    values: dict[str, Any]  # settings by field name
    settings: Settings
    ledger: Ledger | None

    def env(self) -> dict[str, str]:
        return settings_env(self.values)


@dataclass
class Outcome:
    """What one run measured. ``extra``: CPU seconds per process, the simulator's counts, peak RSS per process."""

    kind: str
    keys: int
    seconds: float  # makespan of the work
    confirmed: int
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def keys_per_second(self) -> float:
        return self.confirmed / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, Any]:
        return {**self.__dict__, "keys_per_second": self.keys_per_second}


@contextlib.asynccontextmanager
async def world(
    keys: int,
    venues: tuple[str, ...],
    overrides: dict[str, Any],
    scenario: dict[str, Any] | None = None,
    with_ledger: bool = True,
) -> AsyncIterator[World]:
    root = Path(tempfile.mkdtemp(prefix="keyrevoke-bench-"))
    sim: SimProcess | None = None
    ledger = None
    try:
        inventory, masters = await asyncio.to_thread(write_sample, root / "sample", keys, 2022, venues)
        scenario_file = None
        if scenario is not None:
            scenario_file = root / "scenario.json"
            scenario_file.write_text(json.dumps(scenario))
        sim = SimProcess(inventory, masters, scenario_file, root / "sim.log")
        await sim.start()
        values: dict[str, Any] = {
            "state_dir": str(root / "state"),
            "task_queue_prefix": "bench",
            "master_credentials_file": str(masters),
            "venue_urls": sim.venue_urls,
            "worker_http_port": 0,
            **overrides,
        }
        settings = Settings(**values)
        if with_ledger:
            ledger = ledger_from_settings(settings)
            result = await asyncio.to_thread(import_inventory, ledger, inventory)
            if result.errors:
                raise RuntimeError(f"sample inventory rejected: {result.errors[:3]}")
        yield World(root, inventory, masters, sim, values, settings, ledger)
    finally:
        if ledger is not None:
            ledger.close()
        if sim is not None:
            await sim.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def temporal(w: World) -> AsyncIterator[Client]:
    """A dev server persisted to a file (as the embedded set-up runs it), and a client with the codec."""
    port = free_port()
    w.values["temporal_address"] = f"127.0.0.1:{port}"
    w.settings = Settings(**w.values)
    config = DevServerConfig(port, db_file=w.root / "temporal.db", log_file=w.root / "temporal.log")
    async with dev_server(config, w.settings) as client:
        yield client


def sim_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The simulator's counts: requests, 429 and 418 answers, the busiest second of any venue."""
    return {
        "requests": sum(stats["requests"].values()),
        "requests_by_venue": stats["requests"],
        "rate_limited": sum(stats["rate_limited"].values()),
        "banned": sum(stats["banned"].values()),
        "peak_rps": max((max(map(int, s.values())) for s in stats["per_second"].values() if s), default=0),
    }


async def totals(ledger: Ledger, incident_id: str) -> dict[str, int]:
    """Keys per state over all the incident's venues."""
    by_venue = await asyncio.to_thread(ledger.counts, incident_id)
    result: dict[str, int] = {}
    for per in by_venue.values():
        for state, n in per.items():
            result[state] = result.get(state, 0) + n
    return result


async def audit_histories(client: Client, workflow_ids: list[str]) -> dict[str, Any]:
    """The largest history (events, bytes) and payload over every run of these workflows, continue-as-new included."""
    runs: list[dict[str, Any]] = []
    for workflow_id in workflow_ids:
        run_id: str | None = None
        while True:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
            events = history.events
            runs.append(
                {
                    "events": len(events),
                    "bytes": sum(e.ByteSize() for e in events),
                    "largest_payload": max((p.ByteSize() for e in events for p in iter_payloads(e)), default=0),
                }
            )
            run_id = events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            if not run_id:
                break
    return {
        "runs": len(runs),
        "max_events": max(r["events"] for r in runs),
        "max_history_bytes": max(r["bytes"] for r in runs),
        "max_payload": max(r["largest_payload"] for r in runs),
    }


async def _first_failure(result: asyncio.Future[Any], workers: list[WorkerProcess]) -> Any:
    """``result``, unless a worker process dies first (a crash to report, not an hour to wait)."""
    deaths = [asyncio.ensure_future(worker.died()) for worker in workers]
    try:
        done, _ = await asyncio.wait([result, *deaths], return_when=asyncio.FIRST_COMPLETED)
        if result in done:
            return result.result()
        result.cancel()
        raise RuntimeError(next(iter(done)).result())
    finally:
        for death in deaths:
            death.cancel()


async def keyrevoke_run(
    keys: int,
    venues: tuple[str, ...],
    overrides: dict[str, Any],
    scenario: dict[str, Any] | None = None,
    workers: int = 1,
    audit: bool = False,
    deadline_seconds: float = 3600.0,
) -> Outcome:
    """One incident over every key, started with ``keyrevoke incident start`` as the commander starts it,
    with ``workers`` worker processes (``keyrevoke worker --queues all``), each its own process."""
    async with world(keys, venues, overrides, scenario) as w, temporal(w) as client:
        assert w.ledger is not None
        pool = [
            WorkerProcess([*keyrevoke_cli(), "worker", "--queues", "all"], w.env(), w.root / f"worker-{n}.log")
            for n in range(workers)
        ]
        for worker in pool:
            worker.start()
        try:
            queues = [(w.settings.control_queue, True)] + [(w.settings.venue_queue(v), False) for v in venues]
            await wait_for_pollers(client, queues)
            server_pid = (children_named("temporal") or [0])[0]
            cpu0 = {"worker": sum(x.cpu() for x in pool), "server": cpu_seconds(server_pid)}
            incident_id = "bench-" + uuid.uuid4().hex[:8]
            started = time.time()
            start = await run_measured(
                [*keyrevoke_cli(), "incident", "start", "--id", incident_id], w.env(), w.root / "start"
            )
            if start.returncode != 0:
                raise RuntimeError(f"keyrevoke incident start exited {start.returncode}: {start.stderr[-500:]}")
            handle = client.get_workflow_handle(incident_workflow_id(incident_id))
            await asyncio.wait_for(_first_failure(asyncio.ensure_future(handle.result()), pool), deadline_seconds)
            finished = time.time()
            cpu = {
                "worker": sum(x.cpu() for x in pool) - cpu0["worker"],
                "server": cpu_seconds(server_pid) - cpu0["server"],
            }
            rss = {
                "worker": max(status_kib(x.pid, "VmHWM") for x in pool) / 1024,
                "server": status_kib(server_pid, "VmHWM") / 1024,
                "simulator": status_kib(w.sim.pid, "VmHWM") / 1024,
                "incident start": start.peak_rss_mib,
            }
            history = None
            if audit:
                ids = [incident_workflow_id(incident_id)] + [venue_workflow_id(incident_id, v) for v in venues]
                history = await audit_histories(client, ids)
        finally:
            for worker in pool:
                await worker.stop()
        counts = await totals(w.ledger, incident_id)
        extra = {"sim": sim_summary(await w.sim.stats()), "cpu": cpu, "peak_rss_mib": rss, "history": history,
                 "workers": workers}  # fmt: skip
        return Outcome("keyrevoke", keys, finished - started, counts.get("confirmed", 0), counts, extra)


async def plain_run(keys: int, venues: tuple[str, ...], keys_in_flight: int) -> Outcome:
    """The plain asyncio + ccxt script (``bench.plain``) against a fresh simulator, in its own process."""
    async with world(keys, venues, {}, with_ledger=False) as w:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.plain", str(w.inventory), str(w.masters), json.dumps(w.sim.venue_urls),
            str(keys_in_flight), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=w.env(),
        )  # fmt: skip
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the plain script exited {process.returncode}: {err.decode()[-800:]}")
        result = json.loads([line for line in out.decode().splitlines() if line.startswith("{")][-1])
        outcomes = result["outcomes"]
        extra = {"sim": sim_summary(await w.sim.stats()), "cpu": {"worker": result["cpu_seconds"]}}
        return Outcome("plain", keys, result["seconds"], outcomes.get("confirmed", 0), outcomes, extra)


async def perkey_run(keys: int, venues: tuple[str, ...], overrides: dict[str, Any], window: int) -> Outcome:
    """One child workflow per key (see ``bench.perkey_workflows``), the worker as its own process."""
    from bench.perkey_workflows import FanOutInput, FanOutWorkflow

    async with world(keys, venues, overrides) as w, temporal(w) as client:
        assert w.ledger is not None
        worker = WorkerProcess([sys.executable, "-m", "bench.perkey", str(window)], w.env(), w.root / "worker.log")
        worker.start()
        try:
            queues = [(w.settings.control_queue, True)] + [(w.settings.venue_queue(v), False) for v in venues]
            await wait_for_pollers(client, queues)
            server_pid = (children_named("temporal") or [0])[0]
            cpu0, server0 = worker.cpu(), cpu_seconds(server_pid)
            incident_id = "bench-perkey-" + uuid.uuid4().hex[:8]
            started = time.time()
            await asyncio.to_thread(w.ledger.create_incident, incident_id, [], [], "bench")
            await asyncio.to_thread(w.ledger.plan_incident, incident_id)
            params = FanOutInput(
                incident_id,
                tuple((v, w.settings.venue_queue(v)) for v in venues),
                w.settings.control_queue,
                window,
                w.settings.verify_interval_seconds,
                w.settings.verify_deadline_seconds,
            )
            run = client.execute_workflow(
                FanOutWorkflow.run, params, id=f"{incident_id}-fanout", task_queue=w.settings.control_queue
            )
            await _first_failure(asyncio.ensure_future(run), [worker])
            finished = time.time()
            cpu = {"worker": worker.cpu() - cpu0, "server": cpu_seconds(server_pid) - server0}
        finally:
            await worker.stop()
        counts = await totals(w.ledger, incident_id)
        extra = {"sim": sim_summary(await w.sim.stats()), "cpu": cpu}
        return Outcome("perkey", keys, finished - started, counts.get("confirmed", 0), counts, extra)
