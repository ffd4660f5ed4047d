"""``keyrevoke demo``: the whole mass revoke on the embedded default, on loopback.

It starts the Temporal dev server (persisted under the state directory), the venue simulator and a
worker, imports a sample inventory, runs an incident over every key with live progress, writes the
evidence report, stops what it started, and succeeds only if every key ends confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from commander.devserver import DevServerConfig, dev_server, free_port
from commander.incidents import follow, new_incident_id, start_incident
from commander.inventory_import import import_inventory
from commander.sample import write_sample
from commander.simulate import simulator_for
from commander.situation import summary_lines
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.private_files import private_dir
from keyrevoke.report import write_report
from keyrevoke.settings import Settings
from keyrevoke.signing import load_signing_key
from keyrevoke.states import KeyState
from workers.runner import CONTROL, run_workers


async def run_demo(base: Settings, keys: int, scenario: Path | None = None) -> int:
    """Run the demo; returns the process exit code (0 only when every key is confirmed)."""
    state_dir = base.state_dir
    private_dir(state_dir)
    inventory, masters = write_sample(state_dir / "sample", keys)
    port = free_port()
    settings = base.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{port}",
            "master_credentials_file": masters,
            "worker_http_port": 0,
        }
    )
    ledger = ledger_from_settings(settings)
    try:
        imported = await asyncio.to_thread(import_inventory, ledger, inventory)
        print(f"inventory: {imported.added} keys added, {imported.unchanged} already there ({inventory})")
        simulator, _ = simulator_for(inventory, masters, scenario)
        await simulator.start()
        try:
            settings = settings.model_copy(update={"venue_urls": simulator.venue_urls})
            for venue, url in simulator.venue_urls.items():
                print(f"simulator: {venue} at {url}")
            config = DevServerConfig(port, db_file=state_dir / "temporal.db", log_file=state_dir / "temporal.log")
            async with dev_server(config, settings) as client:
                print(f"temporal dev server: {config.address} (database {config.db_file})")
                stop, ready = asyncio.Event(), asyncio.Event()
                venues = sorted(simulator.venue_urls)
                worker = asyncio.create_task(run_workers(client, settings, [CONTROL, *venues], stop, ledger, ready))
                try:
                    await _until_ready(worker, ready)
                    incident_id = new_incident_id()
                    started = time.monotonic()
                    # The demo's keys are its own: a second run revokes them again at the simulator.
                    await start_incident(client, ledger, settings, incident_id, [], [], include_handled=True)
                    print(f"incident {incident_id} started")
                    view = await follow(client, ledger, settings, incident_id)
                    elapsed = time.monotonic() - started
                finally:
                    stop.set()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
        finally:
            await simulator.stop()
        report_dir = state_dir
        report = await asyncio.to_thread(write_report, ledger, incident_id, report_dir, load_signing_key(settings))
        counts = await asyncio.to_thread(ledger.counts, incident_id)
    finally:
        ledger.close()
    total = sum(sum(per.values()) for per in counts.values())
    confirmed = sum(per.get(KeyState.CONFIRMED.value, 0) for per in counts.values())
    for line in summary_lines(view, settings):
        print(line)
    print(f"incident {incident_id}: workflow {view.workflow_status}; {confirmed} of {total} keys confirmed")
    print(f"wall time {elapsed:.1f} s, {total / elapsed if elapsed else 0:.1f} keys/s")
    print(f"report: {report.json}, {report.csv} and {report.html}, signed in {report.signature}")
    return 0 if view.workflow_status == "completed" and total > 0 and confirmed == total else 1


async def _until_ready(worker: asyncio.Task[None], ready: asyncio.Event) -> None:
    """Wait for the workers to run; if they fail to start, raise their error."""
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({worker, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if worker.done():
        waiter.cancel()
        worker.result()
        raise RuntimeError("the workers stopped before they were ready")
