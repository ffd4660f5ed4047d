"""Batch activities run alone (the SDK's activity environment): resuming from heartbeat details."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.batches import BatchActivities, BatchLimits
from activities.platform_hook import FileHook
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import build_adapter, load_master_credentials
from keyrevoke.ledger.store import Transition
from keyrevoke.models import BatchRequest
from keyrevoke.states import KeyState
from tests.harness import stage


async def test_a_retried_batch_skips_the_keys_its_heartbeat_lists(tmp_path: Path, queue_prefix: str) -> None:
    async with stage(tmp_path, 4, queue_prefix) as st:
        binance = [row for row in st.rows if row.venue == "binance"]
        assert len(binance) == 2
        st.ledger.create_incident("hb", ["binance"], [], "tester")
        st.ledger.plan_incident("hb")
        for row in binance:
            st.ledger.apply(
                "hb",
                [
                    Transition(row.key_id, "binance", KeyState.FROZEN, (KeyState.PENDING,), "key.frozen"),
                    Transition(
                        row.key_id,
                        "binance",
                        KeyState.REVOKING,
                        (KeyState.FROZEN,),
                        "key.baseline",
                        "",
                        {"baseline_ok": 1},
                    ),
                ],
            )
        exchanges = ExchangeFactory(st.settings.venue_urls)
        masters = load_master_credentials(st.masters)
        batches = BatchActivities(
            st.ledger,
            {"binance": build_adapter("binance", exchanges, masters)},
            FileHook(tmp_path / "hook.jsonl"),
            BatchLimits(requests_per_second=100, keys_in_flight=2, request_attempts=2),
        )
        env = ActivityEnvironment()
        beats: list[object] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        done, todo = binance
        # An earlier attempt revoked the first key and said so in its last heartbeat, then died.
        env.info = dataclasses.replace(env.info, heartbeat_details=[[done.key_id]])
        try:
            result = await env.run(batches.revoke_batch, BatchRequest("hb", "binance", (done.key_id, todo.key_id)))
        finally:
            await exchanges.close()
        assert st.simulator.is_live("binance", done.api_key), "the key the heartbeat lists was not sent again"
        assert not st.simulator.is_live("binance", todo.api_key)
        assert result.proceed == (todo.key_id,)
        assert beats[-1] == ([done.key_id, todo.key_id],)
