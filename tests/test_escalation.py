"""Keys a venue will not revoke: the escalation packet, the exchange's bulk revoke, the commander's word.

On the dev server, in real time: the venue refuses the revoke (the platform's master key lacks the
right), the keys are escalated, the exchange revokes some of them on its side (the probes while
waiting notice), the commander confirms the rest, and what still works at the deadline is live.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client

from commander.incidents import control, start_incident
from keyrevoke.models import ConfirmRequest
from keyrevoke.report import build_report
from keyrevoke.states import KeyState
from tests.harness import running_workers, stage
from workflows.incident import incident_workflow_id

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
        answer = await control(dev_client, "esc", "confirm", ConfirmRequest("grace", "binance"))
        assert "verifying" in answer
        await dev_client.get_workflow_handle(incident_workflow_id("esc")).result()

        states = {k.key_id: k.state for k in st.ledger.key_statuses("esc")}
        assert all(states[r.key_id] == KeyState.CONFIRMED for r in by_exchange)
        assert all(states[r.key_id] == KeyState.LIVE for r in rest)
        assert all(states[r.key_id] == KeyState.CONFIRMED for r in st.rows if r.venue == "bybit")
        confirmed_by = [e for e in st.ledger.events("esc") if e["kind"] == "incident.exchange_confirmed"]
        assert [e["actor"] for e in confirmed_by] == ["grace"]


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
        await control(dev_client, "manual", "confirm", ConfirmRequest("heidi", "coinbase"))
        for _ in range(300):
            counts = st.ledger.counts("manual")
            if counts.get("kraken", {}).get("confirmed") == 4:
                break
            await asyncio.sleep(0.1)
        await control(dev_client, "manual", "confirm", ConfirmRequest("heidi", "kraken"))
        await dev_client.get_workflow_handle(incident_workflow_id("manual")).result()
        assert st.ledger.counts("manual") == {"coinbase": {"live": 4}, "kraken": {"confirmed": 4}}
        report = build_report(st.ledger, "manual")
        assert sorted(report["needs_human"]) == sorted(r.key_id for r in st.rows if r.venue == "coinbase")
