"""Keys a venue will not revoke: the escalation packet, the exchange's bulk revoke, the commander's word.

On the dev server, in real time: the venue refuses the revoke (the platform's master key lacks the
right), the keys are escalated, the exchange revokes some of them on its side (the probes while
waiting notice), the commander confirms the rest, and what still works at the deadline is live.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sysconfig
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.control import ControlActivities
from commander.incidents import control, incident_state, start_incident
from keyrevoke.errors import InputError
from keyrevoke.ledger.outreach import escalation_happened
from keyrevoke.models import ConfirmationCheckRequest, ConfirmRequest
from keyrevoke.operators import operators_for
from keyrevoke.report import write_report
from keyrevoke.states import MAY_STILL_WORK, KeyState
from keyrevoke.temporal_client import connect
from tests.harness import address_of, running_workers, stage, until
from workflows.incident import incident_workflow_id, venue_workflow_id
from workflows.venue import VenueWorkflow

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")

REFUSING = {"venues": {"binance": {"master_lacks_permission": True}}}
QUICK = {
    "escalation_wait_seconds": 60,
    "escalation_probe_interval_seconds": 0.5,
    "verify_interval_seconds": 0.3,
    "verify_deadline_seconds": 2,
}


async def test_escalated_keys_end_confirmed_or_live(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    address = dev_client.service_client.config.target_host
    async with (
        stage(tmp_path, 12, queue_prefix, address, scenario=REFUSING, **QUICK) as st,
        running_workers(dev_client, st),
    ):
        binance = [row for row in st.rows if row.venue == "binance"]
        await start_incident(dev_client, st.ledger, st.settings, "esc", [], [])
        # No contact for the exchange: the packet's event says nobody was sent anything.
        for _ in range(300):
            unsent = [e for e in st.ledger.events("esc") if e["kind"] == "escalation.packet.unsent"]
            if unsent:
                break
            await asyncio.sleep(0.1)
        assert "6 keys escalated to Binance" in unsent[0]["detail"]
        assert "nobody was sent anything" in unsent[0]["detail"]

        # The exchange's security team revokes half of them; the probes while waiting notice.
        by_exchange, rest = binance[:3], binance[3:]
        st.simulator.revoke_by_exchange("binance", [r.key_id for r in by_exchange])
        for _ in range(300):
            states = {k.key_id: k.state for k in st.ledger.key_statuses("esc")}
            if all(states[r.key_id] == KeyState.CONFIRMED for r in by_exchange):
                break
            await asyncio.sleep(0.1)
        assert all(states[r.key_id] == KeyState.ESCALATED for r in rest)

        # The commander relays the exchange's word for the rest; they still work, so they end live.
        answer = await control(dev_client, st.settings, "esc", "confirm", ConfirmRequest("grace", "binance"))
        assert "verifying" in answer
        await dev_client.get_workflow_handle(incident_workflow_id("esc")).result()

        states = {k.key_id: k.state for k in st.ledger.key_statuses("esc")}
        assert all(states[r.key_id] == KeyState.CONFIRMED for r in by_exchange)
        assert all(states[r.key_id] == KeyState.LIVE for r in rest)
        assert all(states[r.key_id] == KeyState.CONFIRMED for r in st.rows if r.venue == "bybit")
        # Names are shown, keys decide: the log names the embedded operator with its key's fingerprint.
        (operator,) = operators_for(st.settings)
        confirmed_by = [e for e in st.ledger.events("esc") if e["kind"] == "incident.exchange_confirmed"]
        assert [e["actor"] for e in confirmed_by] == [f"{operator.name} ({operator.fingerprint})"]


async def test_manual_venues_complete_after_confirmation_and_report_what_stayed_live(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    """Kraken and Coinbase have no revocation API: escalated, then the exchange acts (or not)."""
    address = dev_client.service_client.config.target_host
    async with (
        stage(tmp_path, 8, queue_prefix, address, venues=("kraken", "coinbase"), **QUICK) as st,
        running_workers(dev_client, st),
    ):
        await start_incident(dev_client, st.ledger, st.settings, "manual", [], [])
        for _ in range(300):
            unsent = {e["venue"] for e in st.ledger.events("manual") if e["kind"] == "escalation.packet.unsent"}
            if unsent == {"kraken", "coinbase"}:
                break
            await asyncio.sleep(0.1)
        # Kraken's security team revokes every key; the probes while waiting see it.
        st.simulator.revoke_by_exchange("kraken")
        # Coinbase says it did, but did not: the commander's confirmation ends in verification.
        await control(dev_client, st.settings, "manual", "confirm", ConfirmRequest("heidi", "coinbase"))
        for _ in range(300):
            counts = st.ledger.counts("manual")
            if counts.get("kraken", {}).get("confirmed") == 4:
                break
            await asyncio.sleep(0.1)
        # Kraken's keys are all confirmed: nothing waits there any more, and a confirm says so.
        with pytest.raises(InputError, match="nothing to confirm"):
            await control(dev_client, st.settings, "manual", "confirm", ConfirmRequest("heidi", "kraken"))
        await dev_client.get_workflow_handle(incident_workflow_id("manual")).result()
        assert st.ledger.counts("manual") == {"coinbase": {"live": 4}, "kraken": {"confirmed": 4}}
        written = write_report(st.ledger, "manual", tmp_path / "report", Ed25519PrivateKey.generate())
        report = json.loads(written.json.read_text())
        assert report["measures"]["may_still_work"] == 4
        still = [k["key_id"] for k in report["keys"] if k["state"] in MAY_STILL_WORK]
        assert sorted(still) == sorted(r.key_id for r in st.rows if r.venue == "coinbase")


# --- confirmations are checked, and taken in batches, through the command line ---------------------


async def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [KEYREVOKE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    return lines[0]


async def test_confirm_is_checked_and_exchanges_confirm_in_batches(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    """The attack of issue 11 (a confirm naming keys outside the venue) is refused and leaves nothing
    behind; the exchange's word then comes in two batches, each of which works."""
    timing = {**QUICK, "escalation_probe_interval_seconds": 60}  # the commander's word, not the probes
    async with stage(tmp_path, 12, queue_prefix, address_of(dev_client), scenario=REFUSING, **timing) as st:
        client = await connect(st.settings)  # the command line's payload key: the stage's own
        async with running_workers(client, st):
            env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
            env.update(
                {
                    "KEYREVOKE_STATE_DIR": str(st.settings.state_dir),
                    "KEYREVOKE_TEMPORAL_ADDRESS": st.settings.temporal_address,
                    "KEYREVOKE_TASK_QUEUE_PREFIX": st.settings.task_queue_prefix,
                    "KEYREVOKE_VERIFY_DEADLINE_SECONDS": "2",
                    "KEYREVOKE_VERIFY_INTERVAL_SECONDS": "0.3",
                    "KEYREVOKE_ESCALATION_WAIT_SECONDS": "60",
                    "KEYREVOKE_ESCALATION_PROBE_INTERVAL_SECONDS": "60",
                    # What the start's preflight checks: the stage's master credentials and simulator URLs.
                    "KEYREVOKE_MASTER_CREDENTIALS_FILE": str(st.masters),
                    "KEYREVOKE_VENUE_URLS": json.dumps(st.settings.venue_urls),
                }
            )
            started = await _cli(env, "incident", "start", "--id", "cf")
            assert started.returncode == 0, started.stderr
            binance = sorted(r.key_id for r in st.rows if r.venue == "binance")
            bybit = sorted(r.key_id for r in st.rows if r.venue == "bybit")
            # Binance's escalation happened once its event is in the log (its packet written, or why not).
            await until(lambda: escalation_happened(st.ledger, "cf", "binance"))

            async def bybit_done() -> bool:
                state = await incident_state(client, "cf")
                return state is not None and "bybit" in state.venues_done

            await until(bybit_done)

            def keys_file(name: str, key_ids: list[str]) -> str:
                path = tmp_path / name
                path.write_text("\n".join(key_ids) + "\n")
                return str(path)

            # Keys of another venue and of no incident: refused, naming each and why.
            bad = keys_file("bad", [binance[0], bybit[0], "no-such-key"])
            line = _one_line_refusal(await _cli(env, "incident", "confirm", "cf", "--venue", "binance", "--keys", bad))
            assert "confirm refused: 2 of 3 listed keys are not escalated binance keys of this incident" in line
            assert f"{bybit[0]} (a bybit key)" in line
            assert "no-such-key (not in this incident)" in line
            # Nothing was stored for later: the venue still waits, with every key escalated.
            progress = await client.get_workflow_handle(venue_workflow_id("cf", "binance")).query(
                VenueWorkflow.progress
            )
            assert progress.exchange_confirmed_by == ""
            assert st.ledger.counts("cf")["binance"] == {"escalated": 6}
            # A venue that finished waits for nobody: a clear line, not a raw signalling error.
            line = _one_line_refusal(await _cli(env, "incident", "confirm", "cf", "--venue", "bybit"))
            assert "venue 'bybit' has finished: it no longer waits for the exchange" in line

            # The exchange revokes in two batches; each confirm names its own keys and each works.
            first, second = binance[:3], binance[3:]
            st.simulator.revoke_by_exchange("binance", first)
            done = await _cli(env, "incident", "confirm", "cf", "--venue", "binance", "--keys", keys_file("a", first))
            assert done.returncode == 0, done.stderr
            assert "3 listed keys marked revoked by the exchange" in done.stdout

            def states() -> dict[str, str]:
                return {k.key_id: k.state for k in st.ledger.key_statuses("cf")}

            await until(lambda: all(states()[k] == KeyState.CONFIRMED for k in first))
            assert all(states()[k] == KeyState.ESCALATED for k in second)
            # A key already confirmed is not escalated any more.
            line = _one_line_refusal(
                await _cli(env, "incident", "confirm", "cf", "--venue", "binance", "--keys", keys_file("b", first[:1]))
            )
            assert f"{first[0]} (confirmed, not escalated)" in line
            st.simulator.revoke_by_exchange("binance", second)
            done = await _cli(env, "incident", "confirm", "cf", "--venue", "binance", "--keys", keys_file("c", second))
            assert done.returncode == 0, done.stderr
            await client.get_workflow_handle(incident_workflow_id("cf")).result()
            assert st.ledger.counts("cf") == {"binance": {"confirmed": 6}, "bybit": {"confirmed": 6}}
            (operator,) = operators_for(st.settings)
            confirmed_by = [e["actor"] for e in st.ledger.events("cf") if e["kind"] == "incident.exchange_confirmed"]
            assert confirmed_by == [f"{operator.name} ({operator.fingerprint})"] * 2
            # The exchange's word after every key is confirmed dead asks nothing more: said, and no failure.
            late = await _cli(env, "incident", "confirm", "cf", "--venue", "binance")
            assert late.returncode == 0, late.stderr
            assert "binance: nothing to confirm: all 6 of its keys are confirmed dead or closed already" in late.stdout


async def test_a_confirm_before_the_venue_escalates_is_refused(tmp_path: Path) -> None:
    """Before the packet goes to the exchange nothing waits for its word: no confirm is kept for later."""
    async with stage(tmp_path, 4, "unused") as st:
        st.ledger.create_incident("early", [], [], "tester")
        st.ledger.plan_incident("early")
        activities = ControlActivities(st.ledger)
        key = next(r.key_id for r in st.rows if r.venue == "binance")
        for keys in ((), (key,)):
            with pytest.raises(ApplicationError, match=r"binance has escalated no keys to the exchange \(yet\)"):
                await activities.check_confirmation(ConfirmationCheckRequest("early", "binance", keys))
