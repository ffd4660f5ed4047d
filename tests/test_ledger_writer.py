"""Group commit of key transitions against a real SQLite file ledger, and the file hook's one handle."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from activities.ledger_writer import GroupCommitWriter
from activities.platform_hook import FileHook, HookRequest
from keyrevoke.crypto import KeyEncryptionKey, SecretBox
from keyrevoke.evidence import verify_chain
from keyrevoke.inventory import parse_row
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.database import Database
from keyrevoke.ledger.store import Transition
from keyrevoke.states import KeyState
from tests.ledger_backends import sqlite_url

KEK = KeyEncryptionKey(bytes(range(32)))
KEYS = 200


class CountingLedger(Ledger):
    """The real ledger, remembering the size of each ``apply`` (one transaction each); ``gate``
    holds writes back until it is set."""

    def __init__(self, database: Database, box: SecretBox) -> None:
        super().__init__(database, box)
        self.groups: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def apply(self, incident_id: str, transitions: Sequence[Transition], actor: str = "keyrevoke") -> list[str]:
        self.gate.wait(10)
        self.groups.append(len(transitions))
        return super().apply(incident_id, transitions, actor)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CountingLedger]:
    opened = CountingLedger(Database(sqlite_url(tmp_path)), SecretBox(KEK))
    try:
        yield opened
    finally:
        opened.close()


def _incident(ledger: CountingLedger, incident_id: str, keys: int, prefix: str = "k") -> list[str]:
    rows = [
        parse_row(
            {
                "key_id": f"{prefix}{n:04d}",
                "venue": "binance",
                "owner": f"owner-{prefix}",
                "account_id": str(1000 + n),
                "api_key": f"APIKEY-{prefix}{n:04d}-4b8e6d0c5a",
                "secret": f"SECRET-{prefix}{n:04d}-9f3c2a7d1e",
                "passphrase": "",
                "priority": "0",
            },
            "inventory.csv",
            n + 2,
        )
        for n in range(keys)
    ]
    assert ledger.import_rows(rows, "inventory.csv").added == keys
    ledger.create_incident(incident_id, ["binance"], [f"owner-{prefix}"], "tester")
    ledger.plan_incident(incident_id)
    ledger.groups.clear()
    return [row.key_id for row in rows]


def _freeze(key_id: str) -> Transition:
    return Transition(key_id, "binance", KeyState.FROZEN, (KeyState.PENDING,), "key.frozen")


def _baseline(key_id: str) -> Transition:
    return Transition(
        key_id, "binance", KeyState.REVOKING, (KeyState.FROZEN,), "key.baseline", "ok", {"baseline_ok": 1}
    )


def _states(ledger: Ledger, incident_id: str) -> dict[str, str]:
    return {status.key_id: status.state for status in ledger.key_statuses(incident_id)}


async def test_concurrent_keys_share_transactions_and_the_chain_holds(ledger: CountingLedger) -> None:
    keys = _incident(ledger, "inc", KEYS)
    _, before = ledger.chain_head("inc")
    writer = GroupCommitWriter(ledger, max_group=64)

    moved = await asyncio.gather(*(writer.apply("inc", _freeze(key_id)) for key_id in keys))

    assert all(moved)
    assert sum(ledger.groups) == KEYS
    assert len(ledger.groups) < KEYS / 10, ledger.groups
    assert max(ledger.groups) == 64
    assert set(_states(ledger, "inc").values()) == {"frozen"}
    assert ledger.chain_head("inc")[1] == before + KEYS
    assert verify_chain(ledger.events("inc")) is None

    # A retry finds every key done: nothing moves, nothing is logged twice.
    again = await asyncio.gather(*(writer.apply("inc", _freeze(key_id)) for key_id in keys))
    assert not any(again)
    assert ledger.chain_head("inc")[1] == before + KEYS


async def test_each_keys_steps_in_order_with_the_others_grouped(ledger: CountingLedger) -> None:
    keys = _incident(ledger, "inc", 40)
    writer = GroupCommitWriter(ledger)

    async def steps(key_id: str) -> tuple[bool, bool]:
        return await writer.apply("inc", _freeze(key_id)), await writer.apply("inc", _baseline(key_id))

    results = await asyncio.gather(*(steps(key_id) for key_id in keys))

    assert all(a and b for a, b in results)
    assert len(ledger.groups) < 2 * len(keys)
    assert set(_states(ledger, "inc").values()) == {"revoking"}
    assert verify_chain(ledger.events("inc")) is None


async def test_two_steps_of_one_key_never_share_a_group(ledger: CountingLedger) -> None:
    key_id, other = _incident(ledger, "inc", 2)
    writer = GroupCommitWriter(ledger)

    # Queued together: the second step of the key waits for the next transaction, in queue order.
    first, other_moved, second, repeat = await asyncio.gather(
        writer.apply("inc", _freeze(key_id)),
        writer.apply("inc", _freeze(other)),
        writer.apply("inc", _baseline(key_id)),
        writer.apply("inc", _freeze(key_id)),
    )

    assert (first, other_moved, second, repeat) == (True, True, True, False)
    assert ledger.groups == [2, 1, 1]
    assert [e["kind"] for e in ledger.events("inc", key_id)] == ["key.frozen", "key.baseline"]
    assert verify_chain(ledger.events("inc")) is None


async def test_a_failing_write_reaches_every_waiter_and_writes_nothing(ledger: CountingLedger) -> None:
    keys = _incident(ledger, "inc", 10)
    head = ledger.chain_head("inc")
    writer = GroupCommitWriter(ledger)
    # Ledger.apply refuses a field it does not know, after updating the keys before it.
    bad = Transition(keys[5], "binance", KeyState.FROZEN, (KeyState.PENDING,), "key.frozen", "", {"nope": 1})
    changes = [bad if key_id == keys[5] else _freeze(key_id) for key_id in keys]

    results = await asyncio.gather(*(writer.apply("inc", change) for change in changes), return_exceptions=True)

    assert ledger.groups == [10], "one transaction for the whole group"
    assert all(isinstance(result, ValueError) for result in results), results
    assert ledger.chain_head("inc") == head
    assert set(_states(ledger, "inc").values()) == {"pending"}
    # The writer goes on: the batch's retry writes them.
    assert all(await asyncio.gather(*(writer.apply("inc", _freeze(key_id)) for key_id in keys)))
    assert verify_chain(ledger.events("inc")) is None


async def test_a_cancelled_waiter_neither_loses_nor_breaks_the_others(ledger: CountingLedger) -> None:
    keys = _incident(ledger, "inc", 12)
    writer = GroupCommitWriter(ledger)
    ledger.gate.clear()  # the first write hangs in its thread while the rest queue
    first = asyncio.create_task(writer.apply("inc", _freeze(keys[0])))
    await asyncio.sleep(0.05)
    assert writer._flushers, "the first write is under way"
    rest = [asyncio.create_task(writer.apply("inc", _freeze(key_id))) for key_id in keys[1:]]
    await asyncio.sleep(0)
    rest[0].cancel()
    rest[5].cancel()
    first.cancel()  # cancelled while its write runs
    ledger.gate.set()

    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    await writer.close()

    cancelled = [i for i, o in enumerate(outcomes) if isinstance(o, asyncio.CancelledError)]
    assert cancelled == [0, 1, 6]
    assert all(o is True for i, o in enumerate(outcomes) if i not in cancelled)
    # What was queued is written, the cancelled callers' transitions included.
    assert set(_states(ledger, "inc").values()) == {"frozen"}
    assert ledger.groups == [1, 11]
    assert verify_chain(ledger.events("inc")) is None


async def test_incidents_are_grouped_apart(ledger: CountingLedger) -> None:
    a = _incident(ledger, "inc-a", 30, "a")
    b = _incident(ledger, "inc-b", 30, "b")
    writer = GroupCommitWriter(ledger, max_group=8)

    moved = await asyncio.gather(
        *(writer.apply("inc-a", _freeze(key_id)) for key_id in a),
        *(writer.apply("inc-b", _freeze(key_id)) for key_id in b),
    )

    assert all(moved)
    assert max(ledger.groups) == 8
    assert sum(ledger.groups) == 60
    for incident_id in ("inc-a", "inc-b"):
        assert set(_states(ledger, incident_id).values()) == {"frozen"}
        assert verify_chain(ledger.events(incident_id)) is None
    assert not writer._queues
    assert not writer._flushers


async def test_file_hook_keeps_lines_whole_under_concurrent_sends(tmp_path: Path) -> None:
    path = tmp_path / "hooks" / "platform-hook.jsonl"
    hook = FileHook(path)
    long_message = "m" * 20_000  # longer than a buffer: a torn write would show

    def request(n: int, action: str = "notify") -> HookRequest:
        return HookRequest(action, "inc", f"k{n}", "binance", f"sha256:{n:064x}", "confirmed", long_message)

    def from_another_thread(first: int) -> None:
        async def sends() -> None:
            await asyncio.gather(*(hook.send(request(n)) for n in range(first, first + 50)))

        asyncio.run(sends())

    threads = [threading.Thread(target=from_another_thread, args=(1000 * (t + 1),)) for t in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(hook.send(request(n, "freeze")) for n in range(100)))
    for thread in threads:
        thread.join()
    # Written as sent: a reader sees every line before the hook is closed.
    assert len(path.read_text(encoding="utf-8").splitlines()) == 100 + 4 * 50
    await hook.close()
    await hook.send(request(99_999))  # a send after close opens the file again
    await hook.close()

    lines = path.read_text(encoding="utf-8").splitlines()
    payloads = [json.loads(line) for line in lines]
    assert len(payloads) == 100 + 4 * 50 + 1
    assert len({p["idempotency_key"] for p in payloads}) == len(payloads)
    assert all(p["message"] == long_message for p in payloads)
    # The same document as before, one per line.
    (k0,) = [p for p in payloads if p["key_id"] == "k0"]
    assert k0["idempotency_key"] == "inc/k0/freeze/confirmed"
    assert set(k0) == {
        "action",
        "incident_id",
        "key_id",
        "venue",
        "fingerprint",
        "state",
        "message",
        "idempotency_key",
        "at",
    }
