"""Our own set-up's gaps are ours: keys end misconfigured, nothing reaches the venue or its security team.

On the time-skipping server with real activities and the simulator; the worker's start-up warnings
and the simulator's made-up master credentials through the ``keyrevoke`` command itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sysconfig
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from commander.inventory_import import import_inventory
from commander.sample import write_sample
from keyrevoke.inventory import read_inventory
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.settings import Settings
from keyrevoke.states import KeyState
from tests.harness import Stage, address_of, run_incident, stage

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")


async def test_missing_master_and_venue_url_end_keys_misconfigured_not_escalated(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    async with stage(tmp_path, 9, queue_prefix, venues=("binance", "bybit", "okx")) as st:
        masters = json.loads(st.masters.read_text())
        del masters["binance"]  # Binance revokes as the broker: its master is needed for every key
        no_binance = tmp_path / "masters-without-binance.json"
        no_binance.write_text(json.dumps(masters))
        urls = {venue: url for venue, url in st.settings.venue_urls.items() if venue != "bybit"}
        st.settings = st.settings.model_copy(update={"master_credentials_file": no_binance, "venue_urls": urls})

        summary = await run_incident(time_skipping_env.client, st, "mis-1")

        statuses = {k.key_id: k for k in st.ledger.key_statuses("mis-1")}
        by_venue: dict[str, list[str]] = {}
        for key in statuses.values():
            by_venue.setdefault(key.venue, []).append(key.state)
        assert by_venue["binance"] == [KeyState.MISCONFIGURED] * 3
        assert by_venue["bybit"] == [KeyState.MISCONFIGURED] * 3
        assert by_venue["okx"] == [KeyState.CONFIRMED] * 3  # the venue set up right goes on
        assert summary.total(KeyState.ESCALATED) == 0
        for key in statuses.values():
            if key.venue == "binance":
                assert "no master credentials configured for method 'broker'" in key.detail
            if key.venue == "bybit":
                assert "no venue URL" in key.detail
                assert "KEYREVOKE_ALLOW_REAL_EXCHANGES" in key.detail
        # Nothing was asked of those venues, nothing frozen at the platform, no packet for their exchanges.
        assert st.simulator.stats.requests["binance"] == 0
        assert st.simulator.stats.requests["bybit"] == 0
        hook = [json.loads(line) for line in st.settings.resolved_hook_file().read_text().splitlines()]
        frozen = {h["key_id"] for h in hook if h["action"] == "freeze"}
        assert frozen == {k.key_id for k in statuses.values() if k.venue == "okx"}
        packets = st.settings.resolved_escalation_dir() / "mis-1"
        assert not packets.exists() or not any(packets.iterdir())
        kinds = [e["kind"] for e in st.ledger.events("mis-1") if e["venue"] in ("binance", "bybit") and e["key_id"]]
        assert kinds == ["key.misconfigured"] * 6


def _env(state_dir: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    env.update({"KEYREVOKE_STATE_DIR": str(state_dir), "KEYREVOKE_WORKER_HTTP_PORT": "0", **values})
    return env


async def _stderr_lines_until(process: asyncio.subprocess.Process, wanted: int) -> list[str]:
    """The first ``wanted`` lines the process writes to stderr that start with ``warning:``, or all it wrote."""
    assert process.stderr is not None
    seen: list[str] = []
    while len([line for line in seen if line.startswith("warning:")]) < wanted:
        line = await asyncio.wait_for(process.stderr.readline(), 120)
        if not line:
            break
        seen.append(line.decode().rstrip("\n"))
    return seen


async def test_worker_warns_of_venues_it_cannot_serve(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    env = _env(
        tmp_path / "state",
        KEYREVOKE_TEMPORAL_ADDRESS=address_of(dev_client),
        KEYREVOKE_TASK_QUEUE_PREFIX=queue_prefix,
        KEYREVOKE_VENUE_URLS=json.dumps({"binance": "http://127.0.0.1:9/binance"}),
    )
    process = await asyncio.create_subprocess_exec(
        KEYREVOKE, "worker", "--queues", "binance,bybit", env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        lines = await _stderr_lines_until(process, 3)
    finally:
        process.terminate()
        await process.wait()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 3, lines
    masters = tmp_path / "state" / "masters.json"
    assert f"warning: binance: no master credentials in {masters} for method(s) broker" in warnings[0]
    assert warnings[1].startswith("warning: bybit: no venue URL in KEYREVOKE_VENUE_URLS")
    assert f"warning: bybit: no master credentials in {masters} for method(s) sub" in warnings[2]


async def test_sim_writes_master_credentials_the_worker_then_uses(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    inventory, _ = write_sample(tmp_path / "sample", 6, venues=("binance", "okx", "kraken"))
    state = tmp_path / "state"
    masters_file = state / "masters.json"
    process = await asyncio.create_subprocess_exec(
        KEYREVOKE, "sim", "--inventory", str(inventory), env=_env(state), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        said = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        urls_line = ""
        while not urls_line.startswith("KEYREVOKE_VENUE_URLS="):
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, f"the sim ended: {said}"
            urls_line = line.decode()
        assert said.startswith(f"no master credentials file: wrote simulated ones for binance, okx to {masters_file}")
        written = json.loads(masters_file.read_text())
        assert set(written) == {"binance", "okx"}  # Kraken has no revocation API, so no master
        assert written["okx"]["passphrase"]
        assert masters_file.stat().st_mode & 0o077 == 0

        # Workers with the default masters file (the one the sim wrote) revoke the sim's keys.
        urls = json.loads(urls_line.split("=", 1)[1].strip().strip("'"))
        settings = Settings(state_dir=state, task_queue_prefix=queue_prefix, venue_urls=urls, worker_http_port=0)
        ledger = ledger_from_settings(settings)
        try:
            assert not import_inventory(ledger, inventory).errors
            rows, _ = read_inventory(inventory)
            sim_stage = Stage(settings, ledger, None, rows, inventory, masters_file)  # type: ignore[arg-type]
            summary = await run_incident(time_skipping_env.client, sim_stage, "sim-masters")
        finally:
            ledger.close()
        assert summary.total(KeyState.CONFIRMED) == 4  # binance and okx
        assert summary.total(KeyState.MISCONFIGURED) == 0

        # Started again, the sim leaves the file as it is and says nothing of it.
        again = await asyncio.create_subprocess_exec(
            KEYREVOKE, "sim", "--inventory", str(tmp_path / "missing.csv"), env=_env(state), stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(again.communicate(), 60)
        assert "wrote simulated" not in err.decode()
        assert json.loads(masters_file.read_text()) == written
    finally:
        process.terminate()
        await process.wait()
