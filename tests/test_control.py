"""The commander in control: pause, resume, cancel, narrow and a two-person start, on the dev server.

Every action is signed: with the stage's own operator key (the embedded set-up's), or, through the
``keyrevoke`` command, with real OpenSSH keys registered in an operators file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sysconfig
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from commander.incidents import control, incident_state, sign_request, start_incident
from keyrevoke.errors import InputError
from keyrevoke.models import ControlRequest, IncidentInput
from keyrevoke.operators import action_message, load_operators, operators_for, sign_action
from keyrevoke.states import FINAL_STATES, KeyState
from keyrevoke.temporal_client import connect
from tests.harness import Stage, address_of, running_workers, stage, until
from tests.test_operators import make_key, register
from workflows.incident import IncidentWorkflow, incident_workflow_id, venue_workflow_id
from workflows.venue import VenueWorkflow

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")

# Slow enough to act in the middle of the incident, small enough to stay quick.
PACED = {"venues": {"binance": {"latency_ms": 40}, "bybit": {"latency_ms": 40}}}
SLOW = {"batch_size": 4, "batches_in_flight": 1, "keys_in_flight_per_batch": 2, "verify_interval_seconds": 0.3}


def _embedded_actor(st: Stage) -> str:
    (operator,) = operators_for(st.settings)
    return f"{operator.name} ({operator.fingerprint})"


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
    assert await control(dev_client, st.settings, "ctl-pause", "pause", ControlRequest("alice")) == "paused every venue"
    with pytest.raises(InputError, match="already paused"):
        await control(dev_client, st.settings, "ctl-pause", "pause", ControlRequest("alice", "binance"))
    held = await _settled(lambda: len(_kinds(st, "ctl-pause", "key.revoked")))  # requests already sent finish
    await asyncio.sleep(1.5)  # a window in which a paused incident must revoke nothing more
    assert len(_kinds(st, "ctl-pause", "key.revoked")) == held
    assert held < 24
    state = await incident_state(dev_client, "ctl-pause")
    assert state is not None
    assert state.paused_all
    await control(dev_client, st.settings, "ctl-pause", "resume", ControlRequest("bob"))
    await _result(dev_client, "ctl-pause")
    counts = st.ledger.counts("ctl-pause")
    assert sum(per.get("confirmed", 0) for per in counts.values()) == 24
    # Names are shown, keys decide: the log names who acted by the registered name and key fingerprint.
    actor = _embedded_actor(st)
    actors = {(e["kind"], e["actor"]) for e in st.ledger.events("ctl-pause")}
    assert ("incident.paused", actor) in actors
    assert ("incident.resumed", actor) in actors
    with pytest.raises(InputError, match="not running"):
        await control(dev_client, st.settings, "ctl-pause", "pause", ControlRequest("alice"))


async def test_cancel_hands_back_what_was_not_revoked(paced: Stage, dev_client: Client) -> None:
    st = paced
    await start_incident(dev_client, st.ledger, st.settings, "ctl-cancel", [], [])
    await until(lambda: len(_kinds(st, "ctl-cancel", "key.revoked")) >= 2)
    await control(dev_client, st.settings, "ctl-cancel", "cancel", ControlRequest("carol", reason="false alarm"))
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
    # Each owner's last notice: revoked keys dead, the ones handed back to delete and reissue.
    notices = {h["owner"]: h for h in hook if h["action"] == "owner_notice"}
    assert set(notices) == {row.owner for row in st.rows}
    for owner, notice in notices.items():
        outcomes = {k["key_id"]: k["outcome"] for k in notice["keys"]}
        assert outcomes == {
            r.key_id: "dead" if statuses[r.key_id].state == KeyState.CONFIRMED else "still_working"
            for r in st.rows
            if r.owner == owner
        }
        if any(statuses[k].state == KeyState.UNFROZEN for k in outcomes):
            assert "NOT REVOKED: the response was called off before it" in notice["message"]


async def test_narrow_takes_one_venue_out(paced: Stage, dev_client: Client) -> None:
    st = paced
    await start_incident(dev_client, st.ledger, st.settings, "ctl-narrow", [], [])
    await until(lambda: len(_kinds(st, "ctl-narrow", "key.revoked")) >= 1)
    with pytest.raises(InputError, match="no keys in this incident"):
        await control(dev_client, st.settings, "ctl-narrow", "narrow", ControlRequest("dave", "kraken"))
    await control(dev_client, st.settings, "ctl-narrow", "narrow", ControlRequest("dave", "bybit", "not affected"))
    await _result(dev_client, "ctl-narrow")
    counts = st.ledger.counts("ctl-narrow")
    assert counts["binance"] == {"confirmed": 12}
    assert counts["bybit"].get("unfrozen", 0) > 0
    assert set(counts["bybit"]) <= {"confirmed", "unfrozen"}


# --- through the command line, with real OpenSSH keys --------------------------------------------


def _cli_env(st: Stage, key: Path) -> dict[str, str]:
    """The commander's shell: the stage's settings, its registered operators, and one operator's key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    s = st.settings
    env.update(
        {
            "KEYREVOKE_STATE_DIR": str(s.state_dir),
            "KEYREVOKE_LEDGER_URL": s.resolved_ledger_url(),
            "KEYREVOKE_TEMPORAL_ADDRESS": s.temporal_address,
            "KEYREVOKE_TASK_QUEUE_PREFIX": s.task_queue_prefix,
            "KEYREVOKE_OPERATORS_FILE": str(s.operators_file),
            "KEYREVOKE_OPERATOR_KEY_FILE": str(key),
            # What the start's preflight checks: the stage's master credentials and simulator URLs.
            "KEYREVOKE_MASTER_CREDENTIALS_FILE": str(st.masters),
            "KEYREVOKE_VENUE_URLS": json.dumps(s.venue_urls),
            # The incident's pace is the start's: as slow as the other tests here.
            "KEYREVOKE_BATCH_SIZE": str(s.batch_size),
            "KEYREVOKE_BATCHES_IN_FLIGHT": str(s.batches_in_flight),
            "KEYREVOKE_VERIFY_INTERVAL_SECONDS": str(s.verify_interval_seconds),
            "KEYREVOKE_VERIFY_DEADLINE_SECONDS": str(s.verify_deadline_seconds),
        }
    )
    return env


async def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [KEYREVOKE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert reason in lines[0], lines[0]


@pytest.fixture
async def keyed(tmp_path: Path, queue_prefix: str, dev_client: Client):  # type: ignore[no-untyped-def]
    """A stage whose operators are erin, frank and 'Erin ' (a second key of erin's), by real OpenSSH keys.

    The workers run here on a client of the stage's own settings, so that they read the payloads the
    command line writes.
    """
    keys = {name: make_key(tmp_path, name) for name in ("erin", "erin2", "frank", "mallory")}
    operators = register(
        tmp_path / "operators", ("erin", keys["erin"]), ('"Erin "', keys["erin2"]), ("frank", keys["frank"])
    )
    async with stage(
        tmp_path, 24, queue_prefix, address_of(dev_client), scenario=PACED, operators_file=operators, **SLOW
    ) as st:
        client = await connect(st.settings)
        async with running_workers(client, st):
            yield st, client, keys


async def test_two_person_rule_needs_two_registered_keys(keyed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    st, client, keys = keyed
    erin, erin2, frank, mallory = (_cli_env(st, keys[n]) for n in ("erin", "erin2", "frank", "mallory"))
    started = await _cli(erin, "incident", "start", "--id", "two", "--require-approval")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "two"
    assert "waiting for approval" in started.stderr
    fingerprints = {op.name.strip(): op.fingerprint for op in load_operators(st.settings.operators_file)}

    await asyncio.sleep(0.5)  # a window in which an unapproved incident must start nothing
    assert st.ledger.counts("two") == {"binance": {"pending": 12}, "bybit": {"pending": 12}}
    # The starter's own key, and a second key registered under the same name however written: refused.
    _refused(await _cli(erin, "incident", "approve", "two"), "the approval must come from another registered operator")
    _refused(await _cli(erin2, "incident", "approve", "two"), "the approval must come from another registered operator")
    # A key nobody registered, whatever name it claims.
    _refused(
        await _cli({**mallory, "KEYREVOKE_OPERATOR": "frank"}, "incident", "approve", "two"),
        "is not a registered operator",
    )
    state = await incident_state(client, "two")
    assert state is not None
    assert state.phase == "awaiting_approval"

    # Frank approves with ssh-keygen: keyrevoke writes the message, ssh-keygen signs it, keyrevoke sends it.
    message = tmp_path / "approve-two"
    written = await _cli(frank, "incident", "approve", "two", "--write-message", str(message))
    assert written.returncode == 0, written.stderr
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "keyrevoke", "-f", str(keys["frank"]), str(message)],
        check=True,
        capture_output=True,
    )
    approved = await _cli(erin, "incident", "approve", "two", "--signature", f"{message}.sig")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == "approved by frank"
    await _result(client, "two")
    assert st.ledger.counts("two") == {"binance": {"confirmed": 12}, "bybit": {"confirmed": 12}}
    # The log names each operator with the key that decided.
    assert _kinds(st, "two", "incident.created")[0]["actor"] == f"erin ({fingerprints['erin']})"
    assert [e["actor"] for e in _kinds(st, "two", "incident.approved")] == [f"frank ({fingerprints['frank']})"]

    # A close is done on the ledger by the command line, not by the workflow: it is checked there the same way.
    close = ("incident", "close", "two", "--state", "confirmed", "--venue", "bybit", "--reason", "owner deleted them")
    _refused(await _cli({**mallory, "KEYREVOKE_OPERATOR": "frank"}, *close), "close refused: key")
    assert _kinds(st, "two", "key.closed") == []
    closed = await _cli(frank, *close)
    assert closed.returncode == 0, closed.stderr
    assert f"closed by frank ({fingerprints['frank']}): owner deleted them" in closed.stdout


async def test_replayed_stale_and_mismatched_signatures_are_refused(keyed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    st, client, keys = keyed
    erin, frank = _cli_env(st, keys["erin"]), _cli_env(st, keys["frank"])
    # Frank prepares a signed pause with ssh-keygen: keyrevoke writes the message, ssh-keygen signs it.
    pause = tmp_path / "pause-rp"
    written = await _cli(frank, "incident", "pause", "rp", "--write-message", str(pause))
    assert written.returncode == 0, written.stderr
    _ssh_sign(keys["frank"], pause)
    # Erin signs the start with ssh-keygen too; what it names (approval asked) is what it starts.
    start = tmp_path / "start-rp"
    written = await _cli(erin, "incident", "start", "--id", "rp", "--require-approval", "--write-message", str(start))
    assert written.returncode == 0, written.stderr
    _ssh_sign(keys["erin"], start)
    _refused(
        await _cli(erin, "incident", "start", "--id", "rp", "--signature", f"{start}.sig"),
        "the signed message is for reason 'approval required', not ''",
    )
    assert st.ledger.get_incident("rp") is None  # a refused start records nothing
    started = await _cli(erin, "incident", "start", "--id", "rp", "--require-approval", "--signature", f"{start}.sig")
    assert started.returncode == 0, started.stderr

    # While it waits for approval, nothing runs: every refusal below is about the signature alone.
    async def awaiting() -> bool:
        state = await incident_state(client, "rp")
        return state is not None and state.phase == "awaiting_approval"

    await until(awaiting)
    paused = await _cli(erin, "incident", "pause", "rp", "--signature", f"{pause}.sig")
    assert paused.returncode == 0, paused.stderr
    # The same signed pause, sent again: a replay.
    _refused(await _cli(erin, "incident", "pause", "rp", "--signature", f"{pause}.sig"), "already used (a replay)")
    # A resume signed 16 minutes ago is stale; one signed for another incident does not pass for this one.
    stale = tmp_path / "stale"
    stale.write_text(action_message("rp", "resume", at=datetime.now(UTC) - timedelta(minutes=16)))
    _ssh_sign(keys["frank"], stale)
    _refused(await _cli(frank, "incident", "resume", "rp", "--signature", f"{stale}.sig"), "the signature is stale")
    other = tmp_path / "other"
    other.write_text(action_message("rp2", "resume"))
    _ssh_sign(keys["frank"], other)
    _refused(
        await _cli(frank, "incident", "resume", "rp", "--signature", f"{other}.sig"),
        "the signed message is for incident 'rp2', not 'rp'",
    )
    state = await incident_state(client, "rp")
    assert state is not None
    assert state.paused_all
    # A start signed by nobody registered records nothing.
    _refused(
        await _cli(_cli_env(st, keys["mallory"]), "incident", "start", "--id", "rogue"), "is not a registered operator"
    )
    assert st.ledger.get_incident("rogue") is None
    assert (await _cli(frank, "incident", "approve", "rp")).returncode == 0
    assert (await _cli(erin, "incident", "resume", "rp")).returncode == 0
    await _result(client, "rp")
    assert st.ledger.counts("rp") == {"binance": {"confirmed": 12}, "bybit": {"confirmed": 12}}
    fingerprints = {op.name: op.fingerprint for op in load_operators(st.settings.operators_file)}
    assert [e["actor"] for e in _kinds(st, "rp", "incident.paused")] == [f"frank ({fingerprints['frank']})"]
    assert [e["actor"] for e in _kinds(st, "rp", "incident.resumed")] == [f"erin ({fingerprints['erin']})"]


def _ssh_sign(key: Path, message: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "keyrevoke", "-f", str(key), str(message)], check=True, capture_output=True
    )


async def test_the_workflow_acts_only_on_signed_actions(paced: Stage, dev_client: Client) -> None:
    """Whoever reaches Temporal without the command line: an unsigned or borrowed start or action does nothing."""
    st = paced
    for incident_id, signed in (("bare", None), ("borrowed", sign_action(st.settings, "elsewhere", "start"))):
        st.ledger.create_incident(incident_id, [], [], "intruder")
        handle = await dev_client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident_id, st.settings.task_queue_prefix, start_signed=signed),
            id=incident_workflow_id(incident_id),
            task_queue=st.settings.control_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        reason = str(getattr(failed.value.cause, "message", failed.value.cause))
        assert ("start is not signed" if signed is None else "for incident 'elsewhere', not 'borrowed'") in reason
        assert st.ledger.counts(incident_id) == {}  # not even planned

    await start_incident(dev_client, st.ledger, st.settings, "ctl-unsigned", [], [])

    async def running() -> bool:
        state = await incident_state(dev_client, "ctl-unsigned")
        return state is not None and state.phase == "running"

    await until(running)
    handle = dev_client.get_workflow_handle(incident_workflow_id("ctl-unsigned"))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("cancel", ControlRequest("root", reason="no signature"), result_type=str)
    assert "cancel is not signed" in str(getattr(refused.value.cause, "message", refused.value.cause))
    await _result(dev_client, "ctl-unsigned")
    assert _kinds(st, "ctl-unsigned", "incident.cancelled") == []
    assert sum(per.get("confirmed", 0) for per in st.ledger.counts("ctl-unsigned").values()) == 24


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
            await control(dev_client, st.settings, incident, action, request)
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
        cancel = sign_request(st.settings, "ctl-signal", "cancel", ControlRequest("carol", reason="false alarm"))
        await handle.signal("control", args=["cancel", cancel])
        assert st.ledger.counts("ctl-signal") == {}
        async with running_workers(dev_client, st):
            await asyncio.wait_for(_result(dev_client, "ctl-signal"), 120)
        counts = st.ledger.counts("ctl-signal")
        assert counts == {"binance": {"unfrozen": 3}, "bybit": {"unfrozen": 3}}
        assert all("false alarm" in k.detail for k in st.ledger.key_statuses("ctl-signal"))
        hook = st.settings.resolved_hook_file()
        assert not hook.exists() or not [line for line in hook.read_text().splitlines() if '"freeze"' in line]
        assert len(_kinds(st, "ctl-signal", "incident.cancelled")) == 1
        refused = _kinds(st, "ctl-signal", "incident.control.refused")
        assert [e["detail"] for e in refused] == ["explode: not an action (pause, resume, cancel, narrow)"]


async def test_pause_given_while_the_incident_is_planning_holds_it(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    async with stage(tmp_path, 6, queue_prefix, address_of(dev_client)) as st:
        await start_incident(dev_client, st.ledger, st.settings, "ctl-early", [], [])
        # No worker yet: the update reaches the incident with its very first task, before it has planned.
        pausing = asyncio.create_task(control(dev_client, st.settings, "ctl-early", "pause", ControlRequest("alice")))
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
            await control(dev_client, st.settings, "ctl-early", "resume", ControlRequest("bob"))
            await asyncio.wait_for(_result(dev_client, "ctl-early"), 120)
        assert st.ledger.counts("ctl-early") == {"binance": {"confirmed": 3}, "bybit": {"confirmed": 3}}
        assert len(_kinds(st, "ctl-early", "incident.paused")) == 1


async def test_an_unsigned_control_signal_is_refused_on_record(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    async with stage(tmp_path, 6, queue_prefix, address_of(dev_client)) as st:
        async with running_workers(dev_client, st):
            await start_incident(dev_client, st.ledger, st.settings, "ctl-sig-unsigned", [], [])
            handle = dev_client.get_workflow_handle(incident_workflow_id("ctl-sig-unsigned"))
            # A signal bypasses the CLI: the workflow itself must refuse what no operator signed.
            await handle.signal("control", args=["cancel", ControlRequest("mallory", reason="let them live")])
            await asyncio.wait_for(_result(dev_client, "ctl-sig-unsigned"), 120)
        assert _kinds(st, "ctl-sig-unsigned", "incident.cancelled") == []
        refused = _kinds(st, "ctl-sig-unsigned", "incident.control.refused")
        assert len(refused) == 1
        assert "not signed" in refused[0]["detail"]
        counts = st.ledger.counts("ctl-sig-unsigned")
        assert counts == {"binance": {"confirmed": 3}, "bybit": {"confirmed": 3}}
