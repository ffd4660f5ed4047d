"""The incident and venue workflows on the time-skipping test server, with real activities.

The activities are the real ones: a SQLite ledger, ccxt talking to the simulator on loopback. The
test server skips the verify timers, so a verify deadline of minutes passes in no time.
"""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from commander.sample import API_VENUES
from keyrevoke.states import KeyState
from tests.harness import Stage, run_incident, stage
from workflows import options
from workflows.incident import venue_workflow_id


def _states(st: Stage, incident_id: str) -> dict[str, str]:
    return {k.key_id: k.state for k in st.ledger.key_statuses(incident_id)}


async def test_every_key_confirmed_and_deleted_at_its_venue(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    async with stage(tmp_path, 24, queue_prefix, venues=API_VENUES) as st:
        summary = await run_incident(time_skipping_env.client, st, "wf-happy")
        assert summary.total_keys == 24
        assert summary.total(KeyState.CONFIRMED) == 24
        assert {v.venue for v in summary.venues} == set(API_VENUES)
        for row in st.rows:
            assert not st.simulator.is_live(row.venue, row.api_key), row.key_id
        # every key went through each step exactly once
        kinds = [e["kind"] for e in st.ledger.events("wf-happy") if e["key_id"]]
        for step in ("key.frozen", "key.baseline", "key.revoked", "key.confirmed"):
            assert kinds.count(step) == 24, step


async def test_key_whose_baseline_probe_fails_is_not_confirmed(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    blocked = ["k000000", "k000001"]  # one binance, one bybit key in the sample
    scenario = {"venues": {"binance": {"ip_blocked_keys": blocked}, "bybit": {"ip_blocked_keys": blocked}}}
    async with stage(tmp_path, 10, queue_prefix, scenario=scenario) as st:
        summary = await run_incident(time_skipping_env.client, st, "wf-baseline")
        states = _states(st, "wf-baseline")
        for key_id in blocked:
            assert states[key_id] == KeyState.UNCONFIRMED, key_id
        assert summary.total(KeyState.CONFIRMED) == 8
        baseline = {k.key_id: k.baseline_ok for k in st.ledger.key_statuses("wf-baseline")}
        assert baseline["k000000"] is False
        assert baseline["k000002"] is True


async def test_key_still_working_at_the_deadline_is_reported_live(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    # The simulator keeps deleted keys working for an hour; the workflow's deadline is five minutes.
    scenario = {"venues": {"bybit": {"revoke_grace_seconds": 3600}}}
    async with stage(tmp_path, 6, queue_prefix, scenario=scenario) as st:
        summary = await run_incident(time_skipping_env.client, st, "wf-live")
        states = _states(st, "wf-live")
        bybit = [r.key_id for r in st.rows if r.venue == "bybit"]
        assert all(states[k] == KeyState.LIVE for k in bybit)
        assert summary.total(KeyState.LIVE) == len(bybit)
        assert summary.total(KeyState.CONFIRMED) == 6 - len(bybit)
        hook = [json.loads(line) for line in st.settings.resolved_hook_file().read_text().splitlines()]
        told_live = [h for h in hook if h["action"] == "notify" and h["state"] == "live"]
        assert len(told_live) == len(bybit)  # owners told to revoke by hand
        notices = {h["owner"]: h for h in hook if h["action"] == "owner_notice"}
        for key_id in bybit:  # and in their owner's notice, with the exchange's page to do it at
            owner = next(r.owner for r in st.rows if r.key_id == key_id)
            assert {k["key_id"]: k["outcome"] for k in notices[owner]["keys"]}[key_id] == "still_working"


async def test_refused_revoke_is_escalated(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    scenario = {"venues": {"binance": {"master_lacks_permission": True}}}
    async with stage(tmp_path, 6, queue_prefix, scenario=scenario) as st:
        summary = await run_incident(time_skipping_env.client, st, "wf-refused")
        binance = [r.key_id for r in st.rows if r.venue == "binance"]
        states = _states(st, "wf-refused")
        assert all(states[k] == KeyState.ESCALATED for k in binance)
        assert summary.total(KeyState.ESCALATED) == len(binance)
        for row in st.rows:
            if row.venue == "binance":
                assert st.simulator.is_live("binance", row.api_key)
        # No contact and no key for the exchange's security team: no packet on disk (it would be plaintext),
        # and the event log says nobody was sent anything.
        assert not (st.settings.resolved_escalation_dir() / "wf-refused").exists()
        unsent = [e for e in st.ledger.events("wf-refused") if e["kind"] == "escalation.packet.unsent"]
        assert [e["venue"] for e in unsent] == ["binance"]
        assert "nobody was sent anything" in unsent[0]["detail"]


async def test_the_first_batch_is_small_and_revoked_before_any_other_is_probed(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    async with stage(tmp_path, 20, queue_prefix, venues=("binance",)) as st:
        client = time_skipping_env.client
        summary = await run_incident(client, st, "wf-first", batch_size=5, batches_in_flight=3, first_batch_size=2)
        assert summary.total(KeyState.CONFIRMED) == 20
        history = await client.get_workflow_handle(venue_workflow_id("wf-first", "binance")).fetch_history()
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        batch_steps = [name for name in scheduled if name in (options.PREPARE_BATCH, options.REVOKE_BATCH)]
        assert batch_steps[:3] == [options.PREPARE_BATCH, options.REVOKE_BATCH, options.PREPARE_BATCH]
        # The two riskiest keys (the plan's first) are the first revoked.
        riskiest = [k.key_id for k in st.ledger.key_statuses("wf-first")][:2]
        revoked = [e["key_id"] for e in st.ledger.events("wf-first") if e["kind"] == "key.revoked"]
        assert sorted(revoked[:2]) == sorted(riskiest)
