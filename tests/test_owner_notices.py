"""One notice per owner: all their keys by venue and key hint, and what to do, by hook and by mail.

The flow runs on the dev server in real time: Bybit revokes its keys, Binance refuses (escalated);
each owner hears at the end of each venue's work, again when the exchange revokes escalated keys
(the probes see it), and not again when nothing changed for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from temporalio.client import Client

from activities.owner_notices import NoticeSettings, OwnerNoticeDesk
from activities.platform_hook import FileHook, HttpHook
from commander.devserver import free_port
from commander.incidents import control, start_incident
from commander.inventory_import import import_inventory
from commander.sample import write_sample
from keyrevoke.crypto import key_hint
from keyrevoke.ledger.outreach import OwnerKey
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.models import ConfirmRequest
from keyrevoke.owner_notices import compose
from keyrevoke.settings import Settings
from keyrevoke.venues import API_MANAGEMENT_URLS
from tests.harness import running_workers, stage, until
from tests.outreach import SmtpSink
from workflows.incident import incident_workflow_id

REFUSING = {"venues": {"binance": {"master_lacks_permission": True}}}
QUICK = {
    "escalation_wait_seconds": 60,
    "escalation_probe_interval_seconds": 0.5,
    "verify_interval_seconds": 0.3,
    "verify_deadline_seconds": 2,
}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def _notices(hook_file: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in hook_file.read_text().splitlines()]
    return [line for line in lines if line["action"] == "owner_notice"]


def _latest(notices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for notice in notices:
        latest[notice["owner"]] = notice
    return latest


async def test_each_owner_hears_once_per_change_by_hook_and_mail(
    tmp_path: Path, queue_prefix: str, dev_client: Client, smtp: SmtpSink
) -> None:
    address = dev_client.service_client.config.target_host
    async with (
        stage(
            tmp_path,
            12,
            queue_prefix,
            address,
            scenario=REFUSING,
            smtp_url=smtp.url,
            smtp_from="incident@platform.test",
            platform_name="Example Bots",
            **QUICK,
        ) as st,
        running_workers(dev_client, st),
    ):
        owners = defaultdict(list)
        for row in st.rows:
            owners[row.owner].append(row)
        # Half the owners left an address in the inventory.
        with_email = sorted(owners)[::2]
        with st.ledger.db.transaction() as tx:
            for owner in with_email:
                tx.execute("UPDATE keys SET email = ? WHERE owner = ?", (f"{owner}@users.test", owner))
        hook_file = st.settings.resolved_hook_file()

        await start_incident(dev_client, st.ledger, st.settings, "own", [], [])

        # Both venues' work ends (Binance's keys escalated): every owner's latest notice lists every key.
        def everyone_told() -> bool:
            if not hook_file.exists():
                return False
            latest = _latest(_notices(hook_file))
            return set(latest) == set(owners) and all(
                {k["outcome"] for k in latest[o]["keys"]} <= {"dead", "sent_to_exchange"} for o in owners
            )

        await until(everyone_told, 60)
        latest = _latest(_notices(hook_file))
        for owner, rows in owners.items():
            notice = latest[owner]
            listed = {k["key_id"]: k for k in notice["keys"]}
            assert sorted(listed) == sorted(r.key_id for r in rows)
            for row in rows:
                key = listed[row.key_id]
                assert key["key_hint"] == key_hint(row.api_key)
                if row.venue == "bybit":
                    assert key["outcome"] == "dead"
                else:
                    assert key["outcome"] == "sent_to_exchange"
                    assert key["manage_url"] == API_MANAGEMENT_URLS["binance"]
                    assert f"Delete it yourself now at {API_MANAGEMENT_URLS['binance']}" in notice["message"]
            for row in rows:  # a notice never holds a key, a secret or a passphrase
                for value in (row.api_key, row.secret, row.passphrase):
                    if value:
                        assert value not in json.dumps(notice)

        # The same content is never sent twice to an owner.
        sent = _notices(hook_file)
        assert len({(n["owner"], n["digest"]) for n in sent}) == len(sent)

        # Binance's security team revokes one owner's escalated keys; the probes see it, and that owner hears.
        target = next(o for o in sorted(owners) if any(r.venue == "binance" for r in owners[o]))
        revoked = [r.key_id for r in owners[target] if r.venue == "binance"]
        st.simulator.revoke_by_exchange("binance", revoked)

        def target_told_dead() -> bool:
            keys = _latest(_notices(hook_file))[target]["keys"]
            return all(k["outcome"] == "dead" for k in keys if k["key_id"] in revoked)

        await until(target_told_dead, 60)

        # The commander relays the exchange's word for the rest; they still work, so they end live.
        await control(dev_client, st.settings, "own", "confirm", ConfirmRequest("grace", "binance"))
        await dev_client.get_workflow_handle(incident_workflow_id("own")).result()

        latest = _latest(_notices(hook_file))
        for owner, rows in owners.items():
            outcomes = {k["key_id"]: k["outcome"] for k in latest[owner]["keys"]}
            for row in rows:
                expected = "dead" if row.venue == "bybit" or row.key_id in revoked else "still_working"
                assert outcomes[row.key_id] == expected, (owner, row.key_id)
            if any(o == "still_working" for o in outcomes.values()):
                assert f"MAY STILL WORK. Delete it now at {API_MANAGEMENT_URLS['binance']}" in latest[owner]["message"]
                assert "reissue it with an IP allow-list" in latest[owner]["message"]
        sent = _notices(hook_file)
        assert len({(n["owner"], n["digest"]) for n in sent}) == len(sent)

        # Mail went to the owners with an address, the same notices; nobody else was mailed.
        mailed = {r.recipients[0] for r in smtp.received}
        assert mailed == {f"{o}@users.test" for o in with_email}
        for owner in with_email:
            mails = smtp.to(f"{owner}@users.test")
            assert len(mails) == len([n for n in sent if n["owner"] == owner])
            assert mails[-1].body().replace("\r\n", "\n") == latest[owner]["message"]
            assert mails[-1].sender == "incident@platform.test"

        # The event log says who was told what, when and how.
        told = [e for e in st.ledger.events("own") if e["kind"] == "owner.notified"]
        assert len(told) == len(sent)
        for owner in with_email:
            mine = [e for e in told if e["detail"].startswith(f"owner {owner} told")]
            assert mine
            assert all("mail to the address on file" in e["detail"] and "platform hook" in e["detail"] for e in mine)
            assert all(e["at"] for e in mine)
        assert not [e for e in told if "@users.test" in e["detail"]]  # addresses stay out of the evidence


async def test_the_owner_notice_hook_call_is_signed_idempotent_and_retried() -> None:
    """The platform's webhook answers 503 once: the call is retried with the same body and key."""
    secret = "hook-shared-secret"
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.Response(status=503 if len(seen) == 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hook = HttpHook(f"http://127.0.0.1:{port}/hook", secret)
    try:
        notice = compose(
            "inc-7",
            "user00042",
            [OwnerKey("binance", "k1", "AbCd…wXyZ", "live"), OwnerKey("okx", "k2", "QrSt…uVwX", "confirmed")],
            "Example Bots",
        )
        await hook.send_owner_notice(notice)
    finally:
        await hook.close()
        await runner.cleanup()
    assert len(seen) == 2
    (first, first_headers), (body, headers) = seen
    assert json.loads(first)["idempotency_key"] == json.loads(body)["idempotency_key"]
    assert headers["Idempotency-Key"] == first_headers["Idempotency-Key"] == notice.idempotency_key
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Keyrevoke-Signature"] == expected
    document = json.loads(body)
    assert document["action"] == "owner_notice"
    assert document["owner"] == "user00042"
    assert [(k["venue"], k["outcome"]) for k in document["keys"]] == [("binance", "still_working"), ("okx", "dead")]


def _peak_while_notifying(tmp_path: Path, keys: int) -> tuple[int, int]:
    """Peak traced memory of one round of owner notices over ``keys`` confirmed keys, and notices written."""
    inventory, _ = write_sample(tmp_path / "sample", keys, venues=("okx",))
    settings = Settings(state_dir=tmp_path / "state")
    ledger = ledger_from_settings(settings)
    hook = FileHook(settings.resolved_hook_file())
    try:
        assert not import_inventory(ledger, inventory).errors
        ledger.create_incident("big", [], [], "tester")
        ledger.plan_incident("big")
        with ledger.db.transaction() as tx:
            tx.execute("UPDATE incident_keys SET state = 'confirmed' WHERE incident_id = 'big'")
        desk = OwnerNoticeDesk(ledger, hook, None, NoticeSettings("Example Bots", {}))
        tracemalloc.start()
        try:
            counts = asyncio.run(desk.notify("big", "okx"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        asyncio.run(hook.close())
        return peak, counts.sent
    finally:
        ledger.close()


def test_a_round_of_owner_notices_runs_in_bounded_memory(tmp_path: Path) -> None:
    """Sixteen times the keys (and owners) take about the same memory: a page of owners at a time."""
    small, small_sent = _peak_while_notifying(tmp_path / "small", 500)
    large, large_sent = _peak_while_notifying(tmp_path / "large", 8_000)
    print(f"peak traced memory: {small} B for {small_sent} owners, {large} B for {large_sent} owners")
    assert large_sent > 10 * small_sent
    # 3,000-odd notices held at once would take several MB. What grows a little is garbage of finished
    # thread hand-offs (asyncio.to_thread makes reference cycles) waiting for the cyclic collector.
    assert large < 2_000_000
    assert large < small * 2.5


async def test_a_notice_is_sent_once_and_one_the_platform_refused_goes_again(tmp_path: Path, ledger_url: str) -> None:
    """On both ledgers: the hook refuses a round (nothing recorded as told), takes the next, and a round
    with nothing new sends nothing; two rounds at once (two venues ending together) send each notice once."""
    answers: list[int] = []
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        status = answers.pop(0) if answers else 200
        if status == 200:
            received.append(await request.json())
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    inventory, _ = write_sample(tmp_path / "sample", 8, venues=("okx", "gate"))
    settings = Settings(state_dir=tmp_path / "state", ledger_url=ledger_url)
    ledger = ledger_from_settings(settings)
    hook = HttpHook(f"http://127.0.0.1:{port}/hook", None)
    try:
        assert not import_inventory(ledger, inventory).errors
        ledger.create_incident("n1", [], [], "tester")
        ledger.plan_incident("n1")
        with ledger.db.transaction() as tx:
            tx.execute("UPDATE incident_keys SET state = 'confirmed' WHERE incident_id = 'n1'")
        okx_owners = {row[0] for row in ledger.db.query("SELECT DISTINCT owner FROM keys WHERE venue = 'okx'")}
        desk = OwnerNoticeDesk(ledger, hook, None, NoticeSettings("Example Bots", {}))

        answers.extend([400] * len(okx_owners))  # the platform refuses every call of the first round
        first = await desk.notify("n1", "okx")
        assert (first.sent, first.failed) == (0, len(okx_owners))
        failed = [e for e in ledger.events("n1") if e["kind"] == "owner.notice.failed"]
        assert len(failed) == len(okx_owners)
        assert "platform hook answered HTTP 400 to owner_notice" in failed[0]["detail"]

        second = await desk.notify("n1", "okx")
        assert second.sent == len(okx_owners)
        assert {n["owner"] for n in received} == okx_owners
        assert (await desk.notify("n1", "okx")).sent == 0  # nothing changed

        # Gate's keys change; both venues' rounds run at once: each owner is told once.
        with ledger.db.transaction() as tx:
            tx.execute("UPDATE incident_keys SET state = 'live' WHERE incident_id = 'n1' AND venue = 'gate'")
        received.clear()
        rounds = await asyncio.gather(desk.notify("n1", "okx"), desk.notify("n1", "gate"))
        gate_owners = {row[0] for row in ledger.db.query("SELECT DISTINCT owner FROM keys WHERE venue = 'gate'")}
        assert sorted(n["owner"] for n in received) == sorted(gate_owners)
        assert sum(r.sent for r in rounds) == len(gate_owners)
        told = [e for e in ledger.events("n1") if e["kind"] == "owner.notified"]
        assert len(told) == len(okx_owners) + len(gate_owners)
    finally:
        await hook.close()
        await runner.cleanup()
        ledger.close()
