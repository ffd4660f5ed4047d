"""A venue's pace holds across workers: two worker processes, one venue limit, no 429."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sysconfig
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from commander.incidents import start_incident
from keyrevoke.temporal_client import connect
from tests.harness import stage
from tests.test_cli_e2e import cli_env
from workflows import options
from workflows.incident import incident_workflow_id, venue_workflow_id

pytestmark = pytest.mark.e2e

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")
VENUE_LIMIT = 25  # what the simulated venue allows per second
OUR_RATE = 20  # what keyrevoke is told to send, a little below


async def test_two_workers_together_stay_under_the_venue_limit(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    address = dev_client.service_client.config.target_host
    scenario = {"venues": {"binance": {"requests_per_second": VENUE_LIMIT}}}
    async with stage(
        tmp_path,
        60,
        queue_prefix,
        address,
        scenario=scenario,
        venues=("binance",),
        venue_requests_per_second=OUR_RATE,
        batch_size=5,
    ) as st:
        env = cli_env(st)
        env["KEYREVOKE_VENUE_REQUESTS_PER_SECOND"] = str(OUR_RATE)
        env["KEYREVOKE_BATCH_SIZE"] = "5"
        workers = [
            subprocess.Popen(
                [KEYREVOKE, "--verbose", "worker", "--queues", "all"],
                env=env,
                stdout=(tmp_path / f"worker{n}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            for n in (1, 2)
        ]
        try:
            # Both workers must poll before the first batch, or the first one up takes every batch.
            logs = [tmp_path / f"worker{n}.log" for n in (1, 2)]
            for _ in range(600):
                if all("workers running" in log.read_text() for log in logs):
                    break
                await asyncio.sleep(0.1)
            client = await connect(st.settings)
            await start_incident(client, st.ledger, st.settings, "pace", [], [])
            await asyncio.wait_for(client.get_workflow_handle(incident_workflow_id("pace")).result(), 180)
            history = await client.get_workflow_handle(venue_workflow_id("pace", "binance")).fetch_history()
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                await asyncio.to_thread(worker.wait, 40)
        assert st.ledger.counts("pace") == {"binance": {"confirmed": 60}}
        stats = st.simulator.stats
        assert stats.snapshot()["rate_limited"].get("binance", 0) == 0
        # Slots are spaced 1/rate apart across workers: at most one more than the rate in any second.
        assert stats.peak_requests_per_second("binance") <= OUR_RATE + 1
        batch_types = {options.PREPARE_BATCH, options.REVOKE_BATCH, options.VERIFY_BATCH}
        scheduled = {
            event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        identities = {
            event.activity_task_started_event_attributes.identity
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and scheduled[event.activity_task_started_event_attributes.scheduled_event_id] in batch_types
        }
        assert len(identities) >= 2, "both workers took batches of the venue"
