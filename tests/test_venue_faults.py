"""Every venue with a revocation API, under each fault: a mass revoke reaches the right end state.

The real workflows and activities on the time-skipping test server, ccxt against the simulator: one
small incident per venue and fault. The expected end state follows from what the fault does to the
key's life (see DESIGN.md, "One key's life").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from commander.sample import API_VENUES
from keyrevoke.inventory import InventoryRow
from keyrevoke.states import KeyState
from keyrevoke.venues import SUPPORTED_VENUES
from tests.harness import run_incident, stage

KEYS_PER_VENUE = 4
ALL = [f"k{n:06d}" for n in range(KEYS_PER_VENUE)]


def _uses_master(row: InventoryRow) -> bool:
    from activities.venues.registry import ADAPTERS

    return row.method in ADAPTERS[row.venue].master_methods


# fault name -> (scenario entry for the venue, expected end state of a key)
FAULTS: dict[str, tuple[dict[str, Any], Callable[[InventoryRow], KeyState]]] = {
    "none": ({}, lambda row: KeyState.CONFIRMED),
    "latency and 5xx": ({"latency_ms": 30, "error_rate": 0.2, "seed": 3}, lambda row: KeyState.CONFIRMED),
    "lost delete answer": ({"lost_delete_rate": 1.0}, lambda row: KeyState.CONFIRMED),
    "key works a while after delete": ({"revoke_grace_seconds": 1.5}, lambda row: KeyState.CONFIRMED),
    "key works past the deadline": ({"revoke_grace_seconds": 3600}, lambda row: KeyState.LIVE),
    "ip allow-list hides the key": ({"ip_blocked_keys": ALL}, lambda row: KeyState.UNCONFIRMED),
    "key already deleted": ({"already_deleted_keys": ALL}, lambda row: KeyState.UNCONFIRMED),
    "master lacks permission": (
        {"master_lacks_permission": True},
        lambda row: KeyState.ESCALATED if _uses_master(row) else KeyState.CONFIRMED,
    ),
}


# The simulator's grace runs on the wall clock, which the time-skipping server does not move: a key
# that keeps working for 1.5 s is verified on the dev server, in real time, or the skipped verify
# deadline could pass within those 1.5 s and report it live.
REAL_TIME_FAULTS = ("key works a while after delete",)


async def _reaches_the_right_end_state(
    client: Client, tmp_path: Path, queue_prefix: str, venue: str, fault: str, **timing: float
) -> None:
    faults, expected = FAULTS[fault]
    scenario = {"venues": {venue: faults}}
    if "seed" in faults:
        scenario = {"seed": faults["seed"], "venues": {venue: {k: v for k, v in faults.items() if k != "seed"}}}
    async with stage(tmp_path, KEYS_PER_VENUE, queue_prefix, scenario=scenario, venues=(venue,)) as st:
        assert venue in SUPPORTED_VENUES
        incident = f"fault-{venue}"
        await run_incident(
            client,
            st,
            incident,
            batch_size=2,
            batches_in_flight=2,
            escalation_probe_interval_seconds=200,
            **timing,
        )
        states = {k.key_id: k.state for k in st.ledger.key_statuses(incident)}
        wanted = {row.key_id: expected(row).value for row in st.rows}
        assert states == wanted


@pytest.mark.parametrize("fault", [name for name in FAULTS if name not in REAL_TIME_FAULTS])
@pytest.mark.parametrize("venue", API_VENUES)
async def test_mass_revoke_reaches_the_right_end_state(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str, venue: str, fault: str
) -> None:
    await _reaches_the_right_end_state(
        time_skipping_env.client, tmp_path, queue_prefix, venue, fault, verify_deadline_seconds=120
    )


@pytest.mark.parametrize("fault", REAL_TIME_FAULTS)
@pytest.mark.parametrize("venue", API_VENUES)
async def test_mass_revoke_waits_out_a_grace_period_in_real_time(
    dev_client: Client, tmp_path: Path, queue_prefix: str, venue: str, fault: str
) -> None:
    await _reaches_the_right_end_state(
        dev_client, tmp_path, queue_prefix, venue, fault, verify_interval_seconds=0.5, verify_deadline_seconds=30
    )
