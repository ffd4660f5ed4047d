"""Record workflow histories for the replay test: ``python -m tests.record_histories vN``.

Runs a small incident on a fresh dev server that goes through the workflows' paths (a pause and a
resume, a venue that escalates and the commander's confirmation), then writes every workflow history
of it to ``tests/histories/vN/``. The payloads are encrypted with ``REPLAY_PAYLOAD_KEY`` (a key made for
these files, guarding nothing else) so that the replay test can read them.

Record again, into a new folder, when a workflow changes on purpose, and keep the old folders while
incidents started by the old code may still be running: the replay test then proves the new code can
carry them on. v1: before the small first batch; v2: with it; v3: signed actions, checked confirmations
taken in two batches, owner notices, bounded batches and stops that cancel unrevoked batches.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
from pathlib import Path

from commander.devserver import DevServerConfig, dev_server, free_port
from commander.incidents import control, start_incident
from keyrevoke.models import ConfirmRequest, ControlRequest
from keyrevoke.settings import Settings
from tests.harness import running_workers, stage
from workflows.incident import incident_workflow_id

REPLAY_PAYLOAD_KEY = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()
HISTORIES = Path(__file__).parent / "histories"
INCIDENT = "recorded"


async def record(out: Path) -> list[Path]:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        base = Settings(state_dir=tmp / "client", payload_key=REPLAY_PAYLOAD_KEY)  # type: ignore[arg-type]
        async with dev_server(DevServerConfig(free_port()), base) as client:
            address = client.service_client.config.target_host
            scenario = {"venues": {"binance": {"master_lacks_permission": True, "latency_ms": 30}}}
            async with (
                stage(
                    tmp,
                    12,
                    "recorded",
                    address,
                    scenario=scenario,
                    payload_key=REPLAY_PAYLOAD_KEY,
                    batch_size=3,
                    first_batch_size=1,
                    verify_deadline_seconds=2,
                    escalation_probe_interval_seconds=0.5,
                ) as st,
                running_workers(client, st),
            ):
                await start_incident(client, st.ledger, st.settings, INCIDENT, [], [])
                while not [e for e in st.ledger.events(INCIDENT) if e["kind"] == "key.revoked"]:
                    await asyncio.sleep(0.1)
                await control(client, st.settings, INCIDENT, "pause", ControlRequest("recorder"))
                await asyncio.sleep(0.5)
                await control(client, st.settings, INCIDENT, "resume", ControlRequest("recorder"))
                # The packet's turn has come once its event is in the log (sent, or why not).
                while not [
                    e
                    for e in st.ledger.events(INCIDENT)
                    if e["kind"].startswith(("venue.escalated", "escalation.packet"))
                ]:
                    await asyncio.sleep(0.1)
                # The exchange confirms in two batches: two listed keys, then every key still escalated.
                escalated = [k.key_id for k in st.ledger.key_statuses(INCIDENT) if k.state == "escalated"]
                first = tuple(escalated[:2])
                await control(client, st.settings, INCIDENT, "confirm", ConfirmRequest("recorder", "binance", first))
                while {k.key_id for k in st.ledger.key_statuses(INCIDENT) if k.state == "escalated"} & set(first):
                    await asyncio.sleep(0.1)
                await control(client, st.settings, INCIDENT, "confirm", ConfirmRequest("recorder", "binance"))
                await client.get_workflow_handle(incident_workflow_id(INCIDENT)).result()
                out.mkdir(parents=True, exist_ok=True)
                written = []
                async for execution in client.list_workflows(
                    f"WorkflowId STARTS_WITH '{incident_workflow_id(INCIDENT)}'"
                ):
                    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
                    history = await handle.fetch_history()
                    path = out / f"{execution.id}.json"
                    path.write_text(history.to_json())
                    written.append(path)
                return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.record_histories vN  (a new folder under tests/histories)")
    for path in asyncio.run(record(HISTORIES / sys.argv[1])):
        print(path)
