"""Bybit keys listed with method ``self``: a sub-account's key that cannot delete itself ends misconfigured.

Bybit's delete-api takes a main account's key only, and a sub-account's key deletes itself (through
delete-sub-api) only with a transfer right. A batch meets such a key as the inventory lists it: the key
ends ``misconfigured`` with the reason and nothing is deleted or escalated, while the batch's other
keys are revoked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.batches import BatchActivities, BatchLimits
from activities.platform_hook import FileHook
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import build_adapter, load_master_credentials
from commander.simulate import read_masters, sim_key
from keyrevoke.models import BatchRequest
from keyrevoke.states import KeyState
from tests.harness import stage
from venuesim import VenueSimulator


async def test_a_sub_account_key_listed_self_ends_misconfigured_and_the_others_are_revoked(
    tmp_path: Path, queue_prefix: str
) -> None:
    async with stage(tmp_path, 8, queue_prefix, venues=("bybit",)) as st:
        own = [row for row in st.rows if row.method == "self"]
        assert len(own) >= 2
        misfit, fitting = own[0], own[1:]
        # at the venue, the first "self" key is a sub-account's key with no transfer right
        keys = [sim_key(row) for row in st.rows]
        keys = [
            dataclasses.replace(key, main_account=False, permissions=("read", "trade", "withdraw"))
            if key.key_id == misfit.key_id
            else key
            for key in keys
        ]
        async with VenueSimulator(keys, read_masters(st.masters)) as sim:
            st.ledger.create_incident("self", ["bybit"], [], "tester")
            st.ledger.plan_incident("self")
            exchanges = ExchangeFactory(sim.venue_urls)
            batches = BatchActivities(
                st.ledger,
                {"bybit": build_adapter("bybit", exchanges, load_master_credentials(st.masters))},
                FileHook(tmp_path / "hook.jsonl"),
                BatchLimits(requests_per_second=100, keys_in_flight=2, request_attempts=2),
            )
            env = ActivityEnvironment()
            request = BatchRequest("self", "bybit", tuple(row.key_id for row in own))
            try:
                await env.run(batches.prepare_batch, request)
                result = await env.run(batches.revoke_batch, request)
            finally:
                await exchanges.close()

            assert result.proceed == tuple(row.key_id for row in fitting)
            statuses = {status.key_id: status for status in st.ledger.key_statuses("self")}
            assert statuses[misfit.key_id].state == KeyState.MISCONFIGURED.value
            assert "sub-account's key" in statuses[misfit.key_id].detail
            assert "method sub" in statuses[misfit.key_id].detail
            assert sim.is_live("bybit", misfit.api_key)
            assert sim.stats.deletes["bybit"] == len(fitting)  # none for the misfit
            for row in fitting:
                assert statuses[row.key_id].state == KeyState.REVOKED.value
                assert not sim.is_live("bybit", row.api_key)
            kinds = [event["kind"] for event in st.ledger.events("self", misfit.key_id)]
            assert kinds[-1] == "key.misconfigured"
            assert "key.escalated" not in kinds
