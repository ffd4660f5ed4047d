"""One bad key fails alone: a batch's attempts are bounded, then its keys go one by one.

On the time-skipping server (it skips the retry back-off) with real activities and the simulator.
The bad key is the issue's own: a KuCoin sub-account name holding a control character, which the
HTTP library refuses to send on every attempt.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from keyrevoke.models import IncidentInput, VenueProgress
from keyrevoke.operators import sign_action
from keyrevoke.states import KeyState
from tests.harness import running_workers, stage
from workflows.incident import IncidentWorkflow, incident_workflow_id, venue_workflow_id
from workflows.venue import VenueWorkflow

BAD = "k000002"


async def test_a_key_that_fails_every_attempt_fails_alone_and_the_batch_goes_on(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, queue_prefix: str
) -> None:
    client = time_skipping_env.client
    async with stage(tmp_path, 5, queue_prefix, venues=("kucoin",)) as st:
        # Past the inventory's checks, as a file written before them would be: ESC in the sub-account.
        columns = {row[1] for row in st.ledger.db.query("PRAGMA table_info(keys)")}
        with st.ledger.db.transaction() as tx:
            for column in {"account", "account_name"} & columns:  # the sub-account name, wherever it is kept
                assert tx.execute(f"UPDATE keys SET {column} = ? WHERE key_id = ?", ("team\x1bsub", BAD)) == 1  # noqa: S608
        st.ledger.create_incident("iso-1", [], [], "tester")
        params = IncidentInput(
            "iso-1",
            queue_prefix,
            batch_size=5,
            batches_in_flight=1,
            verify_interval_seconds=5,
            verify_deadline_seconds=300,
            batch_attempts=3,
            start_signed=sign_action(st.settings, "iso-1", "start"),
        )
        async with running_workers(client, st):
            summary = await client.execute_workflow(
                IncidentWorkflow.run, params, id=incident_workflow_id("iso-1"), task_queue=st.settings.control_queue
            )
            progress: VenueProgress = await client.get_workflow_handle(venue_workflow_id("iso-1", "kucoin")).query(
                VenueWorkflow.progress
            )

        assert summary.total(KeyState.CONFIRMED) == 4
        assert summary.total(KeyState.FAILED) == 1
        statuses = {k.key_id: k for k in st.ledger.key_statuses("iso-1")}
        bad = statuses[BAD]
        assert bad.state == KeyState.FAILED
        assert bad.detail.startswith("revoke_batch failed on every attempt, the key alone too: ValueError:")
        assert "message is withheld" in bad.detail
        for secret in st.secrets():
            assert secret not in bad.detail
        by_id = {row.key_id: row for row in st.rows}
        assert st.simulator.is_live("kucoin", by_id[BAD].api_key)  # its owner must act: it still works
        for key_id in statuses:
            if key_id != BAD:
                assert not st.simulator.is_live("kucoin", by_id[key_id].api_key), key_id
        failed_events = [e for e in st.ledger.events("iso-1", BAD) if e["kind"] == "key.failed"]
        assert len(failed_events) == 1

        # What the commander's screens read of the venue.
        assert progress.phase == "running"
        assert progress.failing.startswith("revoke_batch: ValueError: kucoin: unexpected ValueError")
        assert progress.last_change_at
