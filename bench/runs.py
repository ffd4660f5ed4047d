"""One run of each kind: keyrevoke's incident, the plain asyncio script, and the workflow-per-key baseline.

Every run builds its own world (sample inventory, ledger, simulator process, dev server, worker
process), times only the work itself, and returns plain data for the report.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory

from bench.procs import (
    Profiler,
    SimProcess,
    WorkerProcess,
    children_named,
    cpu_seconds,
    keyrevoke_cli,
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
from keyrevoke.states import KeyState
from workflows.incident import incident_workflow_id, venue_workflow_id

#: the simulator's revoke endpoints (its statistics count by path; these are only ever deletes)
REVOKE_PATHS = frozenset(
    {
        "/sapi/v1/broker/subAccountApi",
        "/v5/user/delete-api",
        "/v5/user/delete-sub-api",
        "/api/v5/users/subaccount/delete-apikey",
        "/api/v1/sub/api-key",
        "/api/v3/sub-account/apiKey",
        "/api/v4/sub_accounts/{user_id}/keys/{key}",
    }
)

#: throughput without venue limits: the simulator has none; keyrevoke keeps its default request pace (200
#: requests/s per venue, above what one worker reaches here), since its pacer has no off switch
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
    import_seconds: float = 0.0

    def env(self) -> dict[str, str]:
        return settings_env(self.values)


@dataclass
class Outcome:
    """What one run measured."""

    kind: str
    keys: int
    seconds: float  # makespan of the work
    confirmed: int
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def keys_per_second(self) -> float:
        return self.confirmed / self.seconds if self.seconds else 0.0


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="keyrevoke-bench-"))


@contextlib.asynccontextmanager
async def world(
    keys: int,
    venues: tuple[str, ...],
    overrides: dict[str, Any],
    scenario: dict[str, Any] | None = None,
    with_ledger: bool = True,
) -> AsyncIterator[World]:
    root = _scratch()
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
        import_seconds = 0.0
        if with_ledger:
            ledger = ledger_from_settings(settings)
            started = time.monotonic()
            result = await asyncio.to_thread(import_inventory, ledger, inventory)
            import_seconds = time.monotonic() - started
            if result.errors:
                raise RuntimeError(f"sample inventory rejected: {result.errors[:3]}")
        yield World(root, inventory, masters, sim, values, settings, ledger, import_seconds)
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


def _sim_summary(stats: dict[str, Any], started_at: float) -> dict[str, Any]:
    first_revoke = [
        at for per in stats.get("first_seen", {}).values() for path, at in per.items() if path in REVOKE_PATHS
    ]
    first_any = [at for per in stats.get("first_seen", {}).values() for at in per.values()]
    return {
        "requests": sum(stats["requests"].values()),
        "requests_by_venue": stats["requests"],
        "rate_limited": sum(stats["rate_limited"].values()),
        "banned": sum(stats["banned"].values()),
        "statuses": stats["statuses"],
        "peak_rps": {v: max(map(int, s.values())) if s else 0 for v, s in stats["per_second"].items()},
        # requests the venue let through per second, from its first second with a request to its last
        "busy_rps": {
            v: (sum(s.values()) - stats["rate_limited"].get(v, 0) - stats["banned"].get(v, 0))
            / (max(map(int, s)) - min(map(int, s)) + 1)
            for v, s in stats["per_second"].items()
            if s
        },
        "first_request_after": (min(first_any) - started_at) if first_any else None,
        "first_revoke_request_after": (min(first_revoke) - started_at) if first_revoke else None,
    }


def _iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _order_report(ledger: Ledger, incident_id: str) -> dict[str, Any]:
    """Were the riskiest keys revoked first? Per venue, the first M revoked keys against the M top-priority ones;
    and when the last top-priority key of all venues was revoked (epoch seconds)."""
    statuses = [s for s in ledger.key_statuses(incident_id) if s.revoked_at]
    top = max((s.priority for s in statuses), default=0)
    top_revoked = [_iso(s.revoked_at) for s in statuses if s.priority == top and s.revoked_at]
    hits = total = 0
    first: dict[str, dict[str, Any]] = {}
    for venue in sorted({s.venue for s in statuses}):
        mine = sorted((s for s in statuses if s.venue == venue), key=lambda s: (s.revoked_at, s.key_id))
        m = sum(1 for s in mine if s.priority == top)
        hits += sum(1 for s in mine[:m] if s.priority == top)
        total += m
        first[venue] = {"priority": mine[0].priority, "permissions": mine[0].permissions}
    return {
        "top_priority": top,
        "top_first_share": hits / total if total else None,
        "first_revoked": first,
        "top_revoked_last": max(top_revoked, default=None),
    }


async def _totals(ledger: Ledger, incident_id: str) -> dict[str, int]:
    """Keys per state over all the incident's venues."""
    by_venue = await asyncio.to_thread(ledger.counts, incident_id)
    totals: dict[str, int] = {}
    for per in by_venue.values():
        for state, n in per.items():
            totals[state] = totals.get(state, 0) + n
    return totals


async def _worker_ready(client: Client, w: World, venues: tuple[str, ...]) -> int:
    """Wait until a worker polls the control queue and every venue's; return the dev server's pid (0 if unseen)."""
    queues = [(w.settings.control_queue, True)] + [(w.settings.venue_queue(v), False) for v in venues]
    await wait_for_pollers(client, queues)
    return (children_named("temporal") or [0])[0]


async def _first_event_at(ledger: Ledger, incident_id: str, kind: str) -> float | None:
    rows = await asyncio.to_thread(
        ledger.db.query, "SELECT MIN(at) FROM events WHERE incident_id = ? AND kind = ?", (incident_id, kind)
    )
    return _iso(rows[0][0]) if rows and rows[0][0] else None


async def run_histories(client: Client, workflow_id: str) -> AsyncIterator[WorkflowHistory]:
    """The history of every run of a workflow, the latest first, back through continue-as-new."""
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        yield history
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not run_id:
            return


async def audit_histories(client: Client, workflow_ids: list[str]) -> dict[str, Any]:
    """Events and largest payload of every run of these workflows, continue-as-new runs included."""
    runs: list[dict[str, Any]] = []
    for workflow_id in workflow_ids:
        async for history in run_histories(client, workflow_id):
            events = history.events
            largest = max((p.ByteSize() for e in events for p in iter_payloads(e)), default=0)
            runs.append(
                {
                    "workflow_id": workflow_id,
                    "events": len(events),
                    "largest_payload": largest,
                    "bytes": sum(e.ByteSize() for e in events),
                }
            )
    return {
        "runs": len(runs),
        "max_events": max(r["events"] for r in runs),
        "total_events": sum(r["events"] for r in runs),
        "max_payload": max(r["largest_payload"] for r in runs),
        "max_history_bytes": max(r["bytes"] for r in runs),
        "detail": runs,
    }


async def _unless_dead(result: asyncio.Future[Any], worker: WorkerProcess) -> Any:
    """``result``, unless the worker process dies first (a crash to report, not an hour to wait)."""
    while True:
        death = asyncio.ensure_future(worker.died())
        done, _ = await asyncio.wait([result, death], return_when=asyncio.FIRST_COMPLETED)
        if result in done:
            death.cancel()
            return result.result()
        if worker.process is not None and worker.process.poll() is not None:
            result.cancel()
            raise RuntimeError(death.result())
        # the benchmark itself replaced the process (a kill and restart): watch the new one


async def timeline(client: Client, incident_id: str, venue: str, started: float) -> dict[str, float]:
    """When the steps before the first revoke happened, from the workflows' own histories (seconds after launch)."""
    marks: dict[str, float] = {}

    def at(event: Any) -> float:
        return float(event.event_time.ToDatetime().replace(tzinfo=UTC).timestamp()) - started

    history = await client.get_workflow_handle(incident_workflow_id(incident_id)).fetch_history()
    names: dict[int, str] = {}
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_started_event_attributes":
            marks.setdefault("incident workflow started", at(event))
        elif kind == "activity_task_scheduled_event_attributes":
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif kind == "activity_task_completed_event_attributes":
            name = names.get(event.activity_task_completed_event_attributes.scheduled_event_id, "")
            marks.setdefault(f"{name} done", at(event))
        elif kind == "start_child_workflow_execution_initiated_event_attributes":
            marks.setdefault("first venue workflow requested", at(event))
    # the venue's first run: the last one walking back through continue-as-new
    async for earlier in run_histories(client, venue_workflow_id(incident_id, venue)):
        history = earlier
    names = {}
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_started_event_attributes":
            marks.setdefault(f"{venue} workflow started", at(event))
        elif kind == "activity_task_scheduled_event_attributes":
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            names[event.event_id] = name
            marks.setdefault(f"{name} scheduled", at(event))
        elif kind == "activity_task_started_event_attributes":
            name = names.get(event.activity_task_started_event_attributes.scheduled_event_id, "")
            marks.setdefault(f"{name} started", at(event))
        elif kind == "activity_task_completed_event_attributes":
            name = names.get(event.activity_task_completed_event_attributes.scheduled_event_id, "")
            marks.setdefault(f"{name} done", at(event))
    return dict(sorted(marks.items(), key=lambda item: item[1]))


async def keyrevoke_run(
    keys: int,
    venues: tuple[str, ...],
    overrides: dict[str, Any],
    scenario: dict[str, Any] | None = None,
    kill_at: float | None = None,
    audit: bool = False,
    profile: Path | None = None,
    order: bool = True,
    deadline_seconds: float = 3600.0,
    whatif: str = "",
) -> Outcome:
    """One incident over every key, driven as the commander drives it, with the worker as its own process.

    ``kill_at``: SIGKILL the worker once that fraction of keys is confirmed, and start a new one at once.
    ``whatif``: the bench/whatif.py patches (comma list) to install in the worker; its kind names them.
    """
    async with world(keys, venues, overrides, scenario) as w, temporal(w) as client:
        assert w.ledger is not None
        command = [*keyrevoke_cli(), "worker", "--queues", "all"]
        env = w.env()
        if whatif:
            command = [sys.executable, "-m", "bench.whatif", "worker", "--queues", "all"]
            env["BENCH_WHATIF"] = whatif
        worker = WorkerProcess(command, env, w.root / "worker.log")
        worker.start()
        profiler = None
        try:
            server_pid = await _worker_ready(client, w, venues)
            cpu0 = {"worker": worker.cpu(), "server": cpu_seconds(server_pid), "sim": cpu_seconds(w.sim.pid)}
            if profile is not None:
                profiler = Profiler(worker.pid, profile)
                profiler.start()
            incident_id = "bench-" + uuid.uuid4().hex[:8]
            started = time.time()
            process = await asyncio.create_subprocess_exec(
                *keyrevoke_cli(), "incident", "start", "--id", incident_id, env=w.env(),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"keyrevoke incident start exited {process.returncode}: {err.decode()[-500:]}")
            start_returned = time.time()
            handle = client.get_workflow_handle(incident_workflow_id(incident_id))
            watched = asyncio.ensure_future(handle.result())
            result = asyncio.ensure_future(_unless_dead(watched, worker))
            killed_at = restarted_at = None
            if kill_at is not None:
                while not result.done():
                    done = (await _totals(w.ledger, incident_id)).get(KeyState.CONFIRMED.value, 0)
                    if done >= kill_at * keys:
                        killed_at = time.time()
                        worker.kill()
                        worker.start()
                        restarted_at = time.time()
                        break
                    await asyncio.sleep(0.2)
            progress: list[tuple[float, int, float]] = []  # (seconds, keys confirmed, worker RSS MiB)
            completed = True
            if audit:
                # the scale run: sample progress and memory, and give up at the deadline with what was done
                while not result.done():
                    done = (await _totals(w.ledger, incident_id)).get(KeyState.CONFIRMED.value, 0)
                    progress.append((time.time() - started, done, status_kib(worker.pid, "VmRSS") / 1024))
                    if time.time() - started > deadline_seconds:
                        completed = False
                        break
                    await asyncio.wait([result], timeout=15)
            else:
                await asyncio.wait_for(result, deadline_seconds)
            finished = time.time()
            cpu = {
                "worker": worker.cpu() - cpu0["worker"],
                "server": cpu_seconds(server_pid) - cpu0["server"],
                "sim": cpu_seconds(w.sim.pid) - cpu0["sim"],
            }
            if profiler is not None:
                await profiler.stop()
            history = None
            if audit:
                ids = [incident_workflow_id(incident_id)] + [venue_workflow_id(incident_id, v) for v in venues]
                history = await audit_histories(client, ids)
            steps = None
            if order:
                steps = await timeline(client, incident_id, venues[0], started)
            if not completed:
                result.cancel()
                await handle.terminate("benchmark deadline")
        finally:
            if profiler is not None:
                await profiler.stop()
            await worker.stop()
        sim = _sim_summary(await w.sim.stats(), started)
        counts = await _totals(w.ledger, incident_id)
        created = await _first_event_at(w.ledger, incident_id, "incident.created")
        first_revoked = await _first_event_at(w.ledger, incident_id, "key.revoked")
        extra: dict[str, Any] = {
            "sim": sim,
            "cpu": cpu,
            "import_seconds": w.import_seconds,
            "start_command_seconds": start_returned - started,
            "incident_created_after": (created - started) if created else None,
            "first_revoked_event_after": (first_revoked - started) if first_revoked else None,
            "worker_peak_rss_mib": max(worker.peak_rss_kib, worker.peak_hwm_kib) / 1024,
            "worker_hwm_mib": worker.peak_hwm_kib / 1024,
            "history": history,
            "completed": completed,
            "timeline": steps,
            "progress": progress,
        }
        if killed_at is not None:
            twice = await asyncio.to_thread(
                w.ledger.db.query,
                "SELECT COUNT(*) FROM (SELECT key_id FROM events WHERE incident_id = ? AND kind IN"
                " ('key.revoked', 'key.confirmed') GROUP BY key_id, kind HAVING COUNT(*) > 1)",
                (incident_id,),
            )
            extra["keys_logged_twice"] = int(twice[0][0])
            extra["killed_after"] = killed_at - started
            extra["restart_seconds"] = (restarted_at or killed_at) - killed_at
        if order:
            extra["order"] = await asyncio.to_thread(_order_report, w.ledger, incident_id)
            last = extra["order"]["top_revoked_last"]
            extra["top_revoked_after"] = last - started if last is not None else None
        kind = "keyrevoke+" + whatif.replace(",", "+") if whatif else "keyrevoke"
        return Outcome(kind, keys, finished - started, counts.get("confirmed", 0), counts, extra)


async def plain_run(keys: int, venues: tuple[str, ...], keys_in_flight: int, profile: Path | None = None) -> Outcome:
    """The plain asyncio + ccxt script against a fresh simulator, in its own process."""
    module = ["bench.plain"]
    spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "97", "--format", "raw",
           "--gil", "--output", str(profile), "--"] if profile else []  # fmt: skip
    async with world(keys, venues, {}, with_ledger=False) as w:
        process = await asyncio.create_subprocess_exec(
            *spy, sys.executable, "-m", *module, str(w.inventory), str(w.masters), json.dumps(w.sim.venue_urls),
            str(keys_in_flight), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=w.env(),
        )  # fmt: skip
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the plain script exited {process.returncode}: {err.decode()[-800:]}")
        result = json.loads([line for line in out.decode().splitlines() if line.startswith("{")][-1])
        sim = _sim_summary(await w.sim.stats(), time.time())
        outcomes = result["outcomes"]
        extra: dict[str, Any] = {"sim": sim, "cpu": {"script": result.get("cpu_seconds", 0.0)}}
        if "exchanges_built" in result:
            extra["exchanges_built"] = result["exchanges_built"]
        return Outcome("plain", keys, result["seconds"], outcomes.get("confirmed", 0), outcomes, extra)


async def perkey_run(keys: int, venues: tuple[str, ...], overrides: dict[str, Any], window: int) -> Outcome:
    """One child workflow per key (see ``bench.perkey_workflows``), the worker as its own process."""
    from bench.perkey_workflows import FanOutInput, FanOutWorkflow

    async with world(keys, venues, overrides) as w, temporal(w) as client:
        assert w.ledger is not None
        worker = WorkerProcess([sys.executable, "-m", "bench.perkey", str(window)], w.env(), w.root / "worker.log")
        worker.start()
        try:
            server_pid = await _worker_ready(client, w, venues)
            cpu0, server0 = worker.cpu(), cpu_seconds(server_pid)
            incident_id = "bench-perkey-" + uuid.uuid4().hex[:8]
            started = time.time()
            await asyncio.to_thread(w.ledger.create_incident, incident_id, [], [], "bench")
            await asyncio.to_thread(w.ledger.plan_incident, incident_id)
            await client.execute_workflow(
                FanOutWorkflow.run,
                FanOutInput(
                    incident_id,
                    tuple((v, w.settings.venue_queue(v)) for v in venues),
                    w.settings.control_queue,
                    window,
                    w.settings.verify_interval_seconds,
                    w.settings.verify_deadline_seconds,
                ),
                id=f"{incident_id}-fanout",
                task_queue=w.settings.control_queue,
                execution_timeout=None,
            )
            finished = time.time()
            cpu = {"worker": worker.cpu() - cpu0, "server": cpu_seconds(server_pid) - server0}
        finally:
            await worker.stop()
        counts = await _totals(w.ledger, incident_id)
        sim = _sim_summary(await w.sim.stats(), started)
        return Outcome("perkey", keys, finished - started, counts.get("confirmed", 0), counts, {"sim": sim, "cpu": cpu})
