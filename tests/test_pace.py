"""A venue's pace holds across workers: two worker processes, one venue limit, no 429."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

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


async def _workers_at_one_venue(
    tmp_path: Path, queue_prefix: str, dev_client: Client, workers: int, our_rate: int, venue_limit: int, keys: int
) -> tuple[dict[str, Any], int, set[str]]:
    """``workers`` worker processes revoke ``keys`` Binance keys told ``our_rate``: the simulator's
    counts, its peak requests in a second, and the workers that took Binance's batches."""
    address = dev_client.service_client.config.target_host
    incident = f"pace-{queue_prefix}"
    # A venue that counts a sliding second and answers after 0-40 ms: arrivals bunch as in the wild.
    scenario = {"venues": {"binance": {"requests_per_second": venue_limit, "latency_ms": 20}}}
    async with stage(
        tmp_path,
        keys,
        queue_prefix,
        address,
        scenario=scenario,
        venues=("binance",),
        venue_requests_per_second=our_rate,
        batch_size=5,
    ) as st:
        env = cli_env(st)
        env["KEYREVOKE_VENUE_REQUESTS_PER_SECOND"] = str(our_rate)
        env["KEYREVOKE_BATCH_SIZE"] = "5"
        processes = [
            subprocess.Popen(
                [KEYREVOKE, "--verbose", "worker", "--queues", "all"],
                env=env,
                stdout=(tmp_path / f"worker{n}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            for n in range(workers)
        ]
        try:
            # Every worker must poll before the first batch, or the first one up takes every batch.
            logs = [tmp_path / f"worker{n}.log" for n in range(workers)]
            for _ in range(600):
                if all("workers running" in log.read_text() for log in logs):
                    break
                await asyncio.sleep(0.1)
            client = await connect(st.settings)
            await start_incident(client, st.ledger, st.settings, incident, [], [])
            await asyncio.wait_for(client.get_workflow_handle(incident_workflow_id(incident)).result(), 300)
            history = await client.get_workflow_handle(venue_workflow_id(incident, "binance")).fetch_history()
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.to_thread(process.wait, 40)
        assert st.ledger.counts(incident) == {"binance": {"confirmed": keys}}
        stats = st.simulator.stats
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
        return stats.snapshot(), stats.peak_requests_per_second("binance"), identities


async def test_two_workers_together_stay_under_the_venue_limit(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    snapshot, peak, identities = await _workers_at_one_venue(
        tmp_path, queue_prefix, dev_client, workers=2, our_rate=OUR_RATE, venue_limit=VENUE_LIMIT, keys=60
    )
    assert snapshot["rate_limited"].get("binance", 0) == 0
    # Slots are spaced 1/rate apart across workers: at most one more than the rate in any second.
    assert peak <= OUR_RATE + 1
    assert len(identities) >= 2, "both workers took batches of the venue"


async def test_three_workers_at_the_venues_full_limit_get_no_rate_limit_answer(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    """Each worker told the venue's published limit: one window for the venue, shared through the ledger."""
    limit = 10
    snapshot, peak, identities = await _workers_at_one_venue(
        tmp_path, queue_prefix, dev_client, workers=3, our_rate=limit, venue_limit=limit, keys=45
    )
    assert snapshot["rate_limited"].get("binance", 0) == 0, "the venue answered 429"
    assert snapshot.get("banned", {}).get("binance", 0) == 0
    assert peak <= limit
    assert len(identities) >= 2, "the workers shared the venue's batches"
