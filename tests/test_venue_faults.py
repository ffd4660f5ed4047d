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


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("venue", API_VENUES)
async def test_mass_revoke_reaches_the_right_end_state(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str, venue: str, fault: str
) -> None:
    faults, expected = FAULTS[fault]
    scenario = {"venues": {venue: faults}}
    if "seed" in faults:
        scenario = {"seed": faults["seed"], "venues": {venue: {k: v for k, v in faults.items() if k != "seed"}}}
    async with stage(tmp_path, KEYS_PER_VENUE, queue_prefix, scenario=scenario, venues=(venue,)) as st:
        assert venue in SUPPORTED_VENUES
        incident = f"fault-{venue}"
        await run_incident(
            time_skipping_env.client,
            st,
            incident,
            batch_size=2,
            batches_in_flight=2,
            verify_deadline_seconds=120,
            escalation_probe_interval_seconds=200,
        )
        states = {k.key_id: k.state for k in st.ledger.key_statuses(incident)}
        wanted = {row.key_id: expected(row).value for row in st.rows}
        assert states == wanted
