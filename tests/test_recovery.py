"""Crash recovery: a worker killed with SIGKILL, and the dev server restarted, in mid-incident.

The worker is a real ``keyrevoke worker`` process; the dev server persists to a file. After each
crash the incident completes with every key confirmed, none lost, and none revoked or confirmed twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sysconfig
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from commander.devserver import DevServerConfig, free_port, wait_for_server
from commander.incidents import start_incident
from keyrevoke.temporal_client import connect
from tests.harness import Stage, address_of, stage, until
from tests.test_cli_e2e import cli_env
from workflows.incident import incident_workflow_id

pytestmark = pytest.mark.e2e

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")
SLOW = {"venues": {"binance": {"latency_ms": 60}, "bybit": {"latency_ms": 60}}}
PACE = {"batch_size": 5, "batches_in_flight": 2, "keys_in_flight_per_batch": 2}


class Worker:
    """A ``keyrevoke worker`` process that can be killed and started again."""

    def __init__(self, st: Stage, log: Path) -> None:
        self.env = cli_env(st)
        self.env["KEYREVOKE_BATCH_SIZE"] = str(PACE["batch_size"])
        self.env["KEYREVOKE_KEYS_IN_FLIGHT_PER_BATCH"] = str(PACE["keys_in_flight_per_batch"])
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [KEYREVOKE, "--verbose", "worker", "--queues", "all"], env=self.env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 40)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _count(st: Stage, incident_id: str, kind: str) -> Counter[str]:
    return Counter(str(e["key_id"]) for e in st.ledger.events(incident_id) if e["kind"] == kind)


def _assert_exactly_once(st: Stage, incident_id: str) -> None:
    keys = {row.key_id for row in st.rows}
    counts = st.ledger.counts(incident_id)
    assert sum(per.get("confirmed", 0) for per in counts.values()) == len(keys), counts
    for kind in ("key.frozen", "key.baseline", "key.revoked", "key.confirmed"):
        seen = _count(st, incident_id, kind)
        assert set(seen) == keys, kind
        assert set(seen.values()) == {1}, f"{kind} recorded twice for some key"


@pytest.fixture
async def recovery_stage(tmp_path: Path, queue_prefix: str, dev_client: Client) -> AsyncIterator[Stage]:
    async with stage(tmp_path, 60, queue_prefix, address_of(dev_client), scenario=SLOW, **PACE) as st:
        yield st


async def test_worker_killed_mid_incident(recovery_stage: Stage, tmp_path: Path) -> None:
    st = recovery_stage
    # The client shares the worker's settings, and with them its payload key.
    client = await connect(st.settings)
    worker = Worker(st, tmp_path / "worker.log")
    worker.start()
    try:
        await start_incident(client, st.ledger, st.settings, "crash-worker", [], [])
        await until(lambda: sum(_count(st, "crash-worker", "key.revoked").values()) >= 5, 90)
        worker.kill()
        before = sum(_count(st, "crash-worker", "key.confirmed").values())
        assert before < 60, "the worker should die mid-incident"
        worker.start()
        handle = client.get_workflow_handle(incident_workflow_id("crash-worker"))
        await asyncio.wait_for(handle.result(), 180)
    finally:
        await worker.stop()
    _assert_exactly_once(st, "crash-worker")


async def test_dev_server_restarted_mid_incident(tmp_path: Path, queue_prefix: str) -> None:
    port = free_port()
    config = DevServerConfig(port, db_file=tmp_path / "temporal.db", log_file=tmp_path / "server.log")

    def start_server() -> subprocess.Popen[bytes]:
        return subprocess.Popen(config.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    server = start_server()
    worker: Worker | None = None
    try:
        async with stage(tmp_path, 60, queue_prefix, config.address, scenario=SLOW, **PACE) as st:
            client = await wait_for_server(st.settings)
            worker = Worker(st, tmp_path / "worker.log")
            worker.start()
            await start_incident(client, st.ledger, st.settings, "crash-server", [], [])
            await until(lambda: sum(_count(st, "crash-server", "key.revoked").values()) >= 5, 90)
            server.send_signal(signal.SIGKILL)
            server.wait()
            await asyncio.sleep(2)  # an outage, not a wait for a condition: the worker meets a server that is gone
            server = start_server()
            client = await wait_for_server(st.settings)
            handle = client.get_workflow_handle(incident_workflow_id("crash-server"))
            await asyncio.wait_for(handle.result(), 240)
            _assert_exactly_once(st, "crash-server")
    finally:
        if worker is not None:
            await worker.stop()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
