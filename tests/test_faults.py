"""Retries in layers, the circuit breaker, the platform webhook and the order of revokes, on the dev server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from temporalio.client import Client

from activities.pacing import CircuitBreaker
from commander.devserver import free_port
from commander.incidents import start_incident
from keyrevoke.errors import VenueBanned
from tests.harness import Stage, address_of, running_workers, stage
from workflows.incident import incident_workflow_id


async def _run(client: Client, st: Stage, incident_id: str) -> dict[str, dict[str, int]]:
    await start_incident(client, st.ledger, st.settings, incident_id, [], [])
    await client.get_workflow_handle(incident_workflow_id(incident_id)).result()
    return st.ledger.counts(incident_id)


def test_circuit_breaker_opens_for_the_ban_and_closes_after() -> None:
    breaker = CircuitBreaker("binance")
    breaker.check()  # closed
    breaker.trip(0.2)
    with pytest.raises(VenueBanned) as raised:
        breaker.check()
    assert 0 < (raised.value.retry_after or 0) <= 0.2
    time.sleep(0.25)  # past the ban on the clock the breaker reads: a wait for time itself, not a race
    breaker.check()


async def test_a_ban_is_waited_out_not_hammered(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    # The venue allows 40 requests/s and bans for 2 s after two 429s; the worker asks for more.
    scenario = {
        "venues": {"binance": {"requests_per_second": 40, "ban_after_429s": 2, "ban_seconds": 2}},
    }
    async with stage(
        tmp_path, 60, queue_prefix, address_of(dev_client), scenario=scenario, venue_requests_per_second=400
    ) as st:
        async with running_workers(dev_client, st):
            counts = await _run(dev_client, st, "fault-ban")
        assert counts == {"binance": {"confirmed": 30}, "bybit": {"confirmed": 30}}
        banned = st.simulator.stats.snapshot()["banned"].get("binance", 0)
        assert banned >= 1, "the scenario should have banned us at least once"
        # The circuit breaker keeps the worker from calling during the ban: a handful of 418s, not hundreds.
        assert banned <= 12


class FlakyPlatform:
    """A platform webhook on loopback that fails its first requests, then accepts, and checks signatures."""

    def __init__(self, secret: str, failures: int) -> None:
        self.secret = secret.encode()
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Keyrevoke-Signature") != expected:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503)
        payload = json.loads(body)
        assert request.headers["Idempotency-Key"] == payload["idempotency_key"]
        self.received.append(payload)
        return web.Response(status=204)

    async def __aenter__(self) -> FlakyPlatform:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_webhook_is_retried_signed_and_idempotent(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    async with FlakyPlatform("hook-secret", failures=3) as platform:
        hook = {"hook_url": f"http://127.0.0.1:{platform.port}/hook", "hook_secret": "hook-secret"}
        async with (
            stage(tmp_path, 10, queue_prefix, address_of(dev_client), **hook) as st,
            running_workers(dev_client, st),
        ):
            counts = await _run(dev_client, st, "hook-flaky")
    assert counts == {"binance": {"confirmed": 5}, "bybit": {"confirmed": 5}}
    assert platform.bad_signatures == 0
    actions = {(p["action"], p["key_id"]) for p in platform.received if "key_id" in p}
    for row in st.rows:
        assert ("freeze", row.key_id) in actions
        assert ("notify", row.key_id) in actions
    # Every owner got an owner_notice call through the same flaky platform.
    notices = [p["owner"] for p in platform.received if p["action"] == "owner_notice"]
    assert sorted(set(notices)) == sorted({row.owner for row in st.rows})
    body = json.dumps(platform.received)
    for secret in st.secrets():
        assert secret not in body


async def test_a_platform_that_is_down_does_not_hold_back_the_revoke(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    dead = {"hook_url": f"http://127.0.0.1:{free_port()}/hook", "hook_secret": "x"}
    async with stage(tmp_path, 6, queue_prefix, address_of(dev_client), **dead) as st:
        async with running_workers(dev_client, st):
            counts = await _run(dev_client, st, "hook-down")
        assert counts == {"binance": {"confirmed": 3}, "bybit": {"confirmed": 3}}
        failed = [e for e in st.ledger.events("hook-down") if e["kind"] == "hook.freeze.failed"]
        assert len(failed) == 6
        assert "unreachable" in str(failed[0]["detail"])


async def test_riskiest_keys_are_revoked_first(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    # One batch per venue, one key at a time: the order of revokes is the order of risk.
    # (Across batches, pages come by the inventory's priority: see the ledger's planning tests.)
    async with stage(
        tmp_path, 16, queue_prefix, address_of(dev_client), batch_size=8, keys_in_flight_per_batch=1
    ) as st:
        async with running_workers(dev_client, st):
            await _run(dev_client, st, "risk-order")
        statuses = {k.key_id: k for k in st.ledger.key_statuses("risk-order")}
        for venue in ("binance", "bybit"):
            revoked = [
                e["key_id"]
                for e in st.ledger.events("risk-order")
                if e["kind"] == "key.revoked" and e["venue"] == venue
            ]
            assert len(revoked) == 8
            risk = [_harm(statuses[str(k)].permissions) for k in revoked]
            assert risk == sorted(risk, reverse=True), f"{venue}: riskier keys go first ({risk})"
            assert len(set(risk)) > 1, "the sample mixes rights, so the order is tested"


def _harm(permissions: str) -> tuple[bool, bool, bool]:
    rights = set(permissions.split(","))
    return ("withdraw" in rights, "transfer" in rights, "trade" in rights)
