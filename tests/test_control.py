"""The commander in control: pause, resume, cancel, narrow and a two-person start, on the dev server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from commander.incidents import control, incident_state, start_incident
from keyrevoke.errors import InputError
from keyrevoke.models import ControlRequest
from keyrevoke.states import FINAL_STATES, KeyState
from tests.harness import Stage, address_of, running_workers, stage, until
from workflows.incident import incident_workflow_id, venue_workflow_id
from workflows.venue import VenueWorkflow

# Slow enough to act in the middle of the incident, small enough to stay quick.
PACED = {"venues": {"binance": {"latency_ms": 40}, "bybit": {"latency_ms": 40}}}
SLOW = {"batch_size": 4, "batches_in_flight": 1, "keys_in_flight_per_batch": 2, "verify_interval_seconds": 0.3}


def _kinds(st: Stage, incident_id: str, kind: str) -> list[dict[str, object]]:
    return [e for e in st.ledger.events(incident_id) if e["kind"] == kind]


async def _settled(count: Callable[[], int], quiet: float = 1.0, seconds: float = 60.0) -> int:
    """``count()`` once it has stayed the same for ``quiet`` seconds: what was in flight has finished."""
    deadline = time.monotonic() + seconds
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"still changing after {seconds} s"
        await asyncio.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
    return last


async def _result(client: Client, incident_id: str) -> None:
    await client.get_workflow_handle(incident_workflow_id(incident_id)).result()


@pytest.fixture
async def paced(tmp_path: Path, queue_prefix: str, dev_client: Client):  # type: ignore[no-untyped-def]
    async with (
        stage(tmp_path, 24, queue_prefix, address_of(dev_client), scenario=PACED, **SLOW) as st,
        running_workers(dev_client, st),
    ):
        yield st


async def test_pause_holds_the_work_and_resume_finishes_it(paced: Stage, dev_client: Client) -> None:
    st = paced
    await start_incident(dev_client, st.ledger, st.settings, "ctl-pause", [], [])
    await until(lambda: len(_kinds(st, "ctl-pause", "key.revoked")) >= 2)
    assert await control(dev_client, "ctl-pause", "pause", ControlRequest("alice")) == "paused every venue"
    with pytest.raises(InputError, match="already paused"):
        await control(dev_client, "ctl-pause", "pause", ControlRequest("alice", "binance"))
    held = await _settled(lambda: len(_kinds(st, "ctl-pause", "key.revoked")))  # requests already sent finish
    await asyncio.sleep(1.5)  # a window in which a paused incident must revoke nothing more
    assert len(_kinds(st, "ctl-pause", "key.revoked")) == held
    assert held < 24
    state = await incident_state(dev_client, "ctl-pause")
    assert state is not None
    assert state.paused_all
    await control(dev_client, "ctl-pause", "resume", ControlRequest("bob"))
    await _result(dev_client, "ctl-pause")
    counts = st.ledger.counts("ctl-pause")
    assert sum(per.get("confirmed", 0) for per in counts.values()) == 24
    actors = {(e["kind"], e["actor"]) for e in st.ledger.events("ctl-pause")}
    assert ("incident.paused", "alice") in actors
    assert ("incident.resumed", "bob") in actors
    with pytest.raises(InputError, match="not running"):
        await control(dev_client, "ctl-pause", "pause", ControlRequest("alice"))


async def test_cancel_hands_back_what_was_not_revoked(paced: Stage, dev_client: Client) -> None:
    st = paced
    await start_incident(dev_client, st.ledger, st.settings, "ctl-cancel", [], [])
    await until(lambda: len(_kinds(st, "ctl-cancel", "key.revoked")) >= 2)
    await control(dev_client, "ctl-cancel", "cancel", ControlRequest("carol", reason="false alarm"))
    await _result(dev_client, "ctl-cancel")
    statuses = {k.key_id: k for k in st.ledger.key_statuses("ctl-cancel")}
    assert all(KeyState(k.state) in FINAL_STATES for k in statuses.values())
    unfrozen = [k for k in statuses.values() if k.state == KeyState.UNFROZEN]
    assert unfrozen, "a cancel early in the incident leaves keys to hand back"
    by_id = {row.key_id: row for row in st.rows}
    for key in unfrozen:
        assert st.simulator.is_live(key.venue, by_id[key.key_id].api_key), key.key_id
        assert "false alarm" in key.detail
    revoked = [k for k in statuses.values() if k.revoked_at]
    assert revoked
    assert all(k.state == KeyState.CONFIRMED for k in revoked)
    hook = [json.loads(line) for line in st.settings.resolved_hook_file().read_text().splitlines()]
    frozen_then_released = {h["key_id"] for h in hook if h["action"] == "unfreeze"}
    frozen = {h["key_id"] for h in hook if h["action"] == "freeze"}
    assert frozen_then_released == frozen - {k.key_id for k in revoked}
    assert [e["actor"] for e in _kinds(st, "ctl-cancel", "incident.cancelled")] == ["carol"]


async def test_narrow_takes_one_venue_out(paced: Stage, dev_client: Client) -> None:
    st = paced
    await start_incident(dev_client, st.ledger, st.settings, "ctl-narrow", [], [])
    await until(lambda: len(_kinds(st, "ctl-narrow", "key.revoked")) >= 1)
    with pytest.raises(InputError, match="no keys in this incident"):
        await control(dev_client, "ctl-narrow", "narrow", ControlRequest("dave", "kraken"))
    await control(dev_client, "ctl-narrow", "narrow", ControlRequest("dave", "bybit", "not affected"))
    await _result(dev_client, "ctl-narrow")
    counts = st.ledger.counts("ctl-narrow")
    assert counts["binance"] == {"confirmed": 12}
    assert counts["bybit"].get("unfrozen", 0) > 0
    assert set(counts["bybit"]) <= {"confirmed", "unfrozen"}


async def test_two_person_start(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    async with (
        stage(tmp_path, 6, queue_prefix, address_of(dev_client), operator="erin") as st,
        running_workers(dev_client, st),
    ):
        await start_incident(dev_client, st.ledger, st.settings, "ctl-approve", [], [], require_approval=True)
        await until(lambda: st.ledger.counts("ctl-approve") != {})

        async def awaiting_approval() -> bool:
            found = await incident_state(dev_client, "ctl-approve")
            return found is not None and found.phase == "awaiting_approval"

        await until(awaiting_approval)
        state = await incident_state(dev_client, "ctl-approve")
        assert state is not None
        assert state.phase == "awaiting_approval"
        assert state.plan is not None
        assert state.plan.total_keys == 6
        await asyncio.sleep(0.5)  # a window in which an unapproved incident must start nothing
        assert st.ledger.counts("ctl-approve") == {"binance": {"pending": 3}, "bybit": {"pending": 3}}
        with pytest.raises(InputError, match="another person"):
            await control(dev_client, "ctl-approve", "approve", ControlRequest("erin"))
        await control(dev_client, "ctl-approve", "approve", ControlRequest("frank"))
        await _result(dev_client, "ctl-approve")
        counts = st.ledger.counts("ctl-approve")
        assert counts == {"binance": {"confirmed": 3}, "bybit": {"confirmed": 3}}
        assert [e["actor"] for e in _kinds(st, "ctl-approve", "incident.approved")] == ["frank"]


@pytest.mark.parametrize("action", ["cancel", "narrow"])
async def test_cancel_and_narrow_end_while_a_venue_is_down(
    action: str, tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    down = {"venues": {"bybit": {"error_rate": 1.0}}}  # every answer a 503: its batches retry and retry
    stuck = {"batch_size": 3, "batches_in_flight": 2, "request_attempts": 1, "batch_attempts": 1000}
    incident = f"ctl-down-{action}"
    async with stage(tmp_path, 12, queue_prefix, address_of(dev_client), scenario=down, **stuck) as st:
        async with running_workers(dev_client, st):
            await start_incident(dev_client, st.ledger, st.settings, incident, [], [])
            await until(lambda: st.ledger.counts(incident).get("bybit", {}).get("frozen", 0) >= 1)
            request = ControlRequest("carol", "bybit" if action == "narrow" else "", "venue down")
            await control(dev_client, incident, action, request)
            # It ends: the stuck batches are cancelled and their keys handed back (a hang fails here).
            await asyncio.wait_for(_result(dev_client, incident), 120)
            progress = await dev_client.get_workflow_handle(venue_workflow_id(incident, "bybit")).query(
                VenueWorkflow.progress
            )

        bybit = [k for k in st.ledger.key_statuses(incident) if k.venue == "bybit"]
        assert {k.state for k in bybit} == {KeyState.UNFROZEN}
        assert all("venue down" in k.detail for k in bybit)
        by_id = {row.key_id: row for row in st.rows}
        assert all(st.simulator.is_live("bybit", by_id[k.key_id].api_key) for k in bybit)
        hook = [json.loads(line) for line in st.settings.resolved_hook_file().read_text().splitlines()]
        frozen = {h["key_id"] for h in hook if h["action"] == "freeze" and h["venue"] == "bybit"}
        assert frozen
        assert frozen <= {h["key_id"] for h in hook if h["action"] == "unfreeze"}
        assert progress.phase == "cancelling"
        binance = {k.state for k in st.ledger.key_statuses(incident) if k.venue == "binance"}
        if action == "narrow":
            assert binance == {KeyState.CONFIRMED}  # the venue left in goes on to the end
        else:
            assert binance <= {KeyState.CONFIRMED, KeyState.UNFROZEN}


async def test_control_signalled_while_no_worker_runs_acts_when_one_comes(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    async with stage(tmp_path, 6, queue_prefix, address_of(dev_client)) as st:
        await start_incident(dev_client, st.ledger, st.settings, "ctl-signal", [], [])
        handle = dev_client.get_workflow_handle(incident_workflow_id("ctl-signal"))
        # No worker: the incident has not even planned. Signals wait in its history.
        await handle.signal("control", args=["explode", ControlRequest("carol")])
        await handle.signal("control", args=["cancel", ControlRequest("carol", reason="false alarm")])
        assert st.ledger.counts("ctl-signal") == {}
        async with running_workers(dev_client, st):
            await asyncio.wait_for(_result(dev_client, "ctl-signal"), 120)
        counts = st.ledger.counts("ctl-signal")
        assert counts == {"binance": {"unfrozen": 3}, "bybit": {"unfrozen": 3}}
        assert all("false alarm" in k.detail for k in st.ledger.key_statuses("ctl-signal"))
        hook = st.settings.resolved_hook_file()
        assert not hook.exists() or not [line for line in hook.read_text().splitlines() if '"freeze"' in line]
        assert [e["actor"] for e in _kinds(st, "ctl-signal", "incident.cancelled")] == ["carol"]
        refused = _kinds(st, "ctl-signal", "incident.control.refused")
        assert [e["detail"] for e in refused] == ["explode: not an action (pause, resume, cancel, narrow)"]


async def test_pause_given_while_the_incident_is_planning_holds_it(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    async with stage(tmp_path, 6, queue_prefix, address_of(dev_client)) as st:
        await start_incident(dev_client, st.ledger, st.settings, "ctl-early", [], [])
        # No worker yet: the update reaches the incident with its very first task, before it has planned.
        pausing = asyncio.create_task(control(dev_client, "ctl-early", "pause", ControlRequest("alice")))
        await asyncio.sleep(1.0)  # the update is on its way before a worker comes
        async with running_workers(dev_client, st):
            assert await asyncio.wait_for(pausing, 60) == "paused every venue"

            async def venues_paused() -> bool:
                try:
                    progress = [
                        await dev_client.get_workflow_handle(venue_workflow_id("ctl-early", venue)).query(
                            VenueWorkflow.progress
                        )
                        for venue in ("binance", "bybit")
                    ]
                except RPCError:  # not started yet
                    return False
                return all(p.phase == "paused" for p in progress)

            await until(venues_paused)
            await asyncio.sleep(1.0)  # a window in which a paused incident must touch no key
            assert st.ledger.counts("ctl-early") == {"binance": {"pending": 3}, "bybit": {"pending": 3}}
            await control(dev_client, "ctl-early", "resume", ControlRequest("bob"))
            await asyncio.wait_for(_result(dev_client, "ctl-early"), 120)
        assert st.ledger.counts("ctl-early") == {"binance": {"confirmed": 3}, "bybit": {"confirmed": 3}}
        assert [e["actor"] for e in _kinds(st, "ctl-early", "incident.paused")] == ["alice"]
