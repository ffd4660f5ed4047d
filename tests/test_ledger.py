"""The ledger on both back ends (SQLite file, PostgreSQL schema): one code path, the same behaviour."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyrevoke.crypto import KeyEncryptionKey, SecretBox
from keyrevoke.errors import ConfigurationError, IncidentConflictError, InputError, SecretStoreError
from keyrevoke.inventory import InventoryRow, parse_row, read_inventory
from keyrevoke.ledger import Ledger, open_ledger
from keyrevoke.ledger.store import Transition
from keyrevoke.states import KeyState
from tests.ledger_backends import stored_bytes

SOURCE = "inventory.csv"
KEK = KeyEncryptionKey(bytes(range(32)))


def secret_of(key_id: str) -> str:
    return f"SECRET-{key_id}-9f3c2a7d1e"


def api_key_of(key_id: str) -> str:
    return f"APIKEY-{key_id}-4b8e6d0c5a"


def passphrase_of(key_id: str) -> str:
    return f"PASS-{key_id}-77aa31"


def row(
    key_id: str,
    venue: str = "binance",
    owner: str = "alice",
    priority: int = 0,
    line: int = 2,
    **overrides: object,
) -> InventoryRow:
    raw: dict[str, object] = {
        "key_id": key_id,
        "venue": venue,
        "owner": owner,
        "account_id": "4242",
        "account_name": f"acct-{key_id}",
        "api_key": api_key_of(key_id),
        "secret": secret_of(key_id),
        "passphrase": passphrase_of(key_id) if venue == "bybit" else "",
        "priority": str(priority),
    }
    raw.update(overrides)
    return parse_row(raw, SOURCE, line)


# --- back ends --------------------------------------------------------------------------------------


# pg_session and ledger_url (SQLite, then PostgreSQL) come from conftest.py.


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = open_ledger(ledger_url, SecretBox(KEK))
    try:
        yield opened
    finally:
        opened.close()


def planned(ledger: Ledger, rows: list[InventoryRow], incident: str = "inc-1", venues: tuple[str, ...] = ()) -> None:
    assert ledger.import_rows(rows, SOURCE).errors == []
    ledger.create_incident(incident, venues, [], "tester")
    ledger.plan_incident(incident)


def freeze(key_id: str, venue: str = "binance") -> Transition:
    return Transition(key_id, venue, KeyState.FROZEN, (KeyState.PENDING,), "key.frozen")


def all_pages(ledger: Ledger, incident: str, venue: str, limit: int) -> list[list[tuple[str, int]]]:
    pages, after = [], 0
    while page := ledger.load_page(incident, venue, after, limit):
        pages.append(page)
        after = page[-1][1]
    return pages


# --- inventory --------------------------------------------------------------------------------------


def test_import_adds_rows_and_lists_them_without_secrets(ledger: Ledger) -> None:
    rows = [row("k1"), row("k2", venue="bybit", owner="bob", priority=5), row("k3")]

    result = ledger.import_rows(rows, SOURCE)

    assert (result.added, result.unchanged, result.errors) == (3, 0, [])
    listed = {k["key_id"]: k for k in ledger.list_keys()}
    assert sorted(listed) == ["k1", "k2", "k3"]
    assert listed["k2"]["venue"] == "bybit"
    assert listed["k2"]["owner"] == "bob"
    assert listed["k2"]["method"] == "self"  # bybit's default revoke method
    assert listed["k2"]["priority"] == 5
    assert listed["k1"]["fingerprint"] == rows[0].fingerprint
    assert listed["k1"]["key_hint"] == "APIK…0c5a"
    assert [k["key_id"] for k in ledger.list_keys("bybit")] == ["k2"]
    for listed_key in listed.values():
        text = repr(listed_key)
        assert "SECRET-" not in text
        assert "APIKEY-" not in text


def test_reimport_of_the_same_rows_changes_nothing(ledger: Ledger) -> None:
    rows = [row("k1"), row("k2", venue="bybit")]
    ledger.import_rows(rows, SOURCE)
    before = ledger.list_keys()

    again = ledger.import_rows([row("k1", line=9), row("k2", venue="bybit", line=10)], "other.csv")

    assert (again.added, again.unchanged, again.errors) == (0, 2, [])
    assert ledger.list_keys() == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"secret": "SECRET-changed-0000000"}, "already imported with different data"),
        ({"owner": "mallory"}, "already imported with different data"),
        ({"priority": 99}, "already imported with different data"),
    ],
)
def test_reimport_with_changed_data_is_refused_and_the_first_is_kept(
    ledger: Ledger, change: dict[str, Any], expected: str
) -> None:
    ledger.import_rows([row("k1")], SOURCE)
    planned(ledger, [])

    result = ledger.import_rows([row("k1", line=7, **change)], "second.csv")

    assert (result.added, result.unchanged) == (0, 0)
    [error] = result.errors
    assert (error.source, error.line) == ("second.csv", 7)
    assert "k1" in str(error)
    assert expected in str(error)
    assert "SECRET-" not in str(error)
    assert "APIKEY-" not in str(error)
    [kept] = ledger.list_keys()
    assert kept["owner"] == "alice"
    assert kept["priority"] == 0
    [sealed] = ledger.load_keys("inc-1", ["k1"])
    assert ledger.open_secret(sealed, "secret") == secret_of("k1")


def test_the_same_api_key_under_another_key_id_is_refused(ledger: Ledger) -> None:
    ledger.import_rows([row("k1")], SOURCE)

    result = ledger.import_rows([row("k2", api_key=api_key_of("k1"), line=4)], SOURCE)

    assert result.added == 0
    [error] = result.errors
    assert error.line == 4
    assert "same API key" in error.reason
    assert "k1" in error.reason
    assert api_key_of("k1") not in str(error)
    assert [k["key_id"] for k in ledger.list_keys()] == ["k1"]


def test_one_bad_row_does_not_block_the_good_rows_of_the_same_import(ledger: Ledger) -> None:
    ledger.import_rows([row("k1")], SOURCE)

    result = ledger.import_rows([row("k1", owner="someone-else"), row("k2"), row("k3")], SOURCE)

    assert (result.added, len(result.errors)) == (2, 1)
    assert [k["key_id"] for k in ledger.list_keys()] == ["k1", "k2", "k3"]


def test_secrets_are_not_stored_in_plaintext(ledger: Ledger) -> None:
    rows = [row("k1"), row("k2", venue="bybit"), row("k3", venue="bybit", method="sub")]
    planned(ledger, rows)
    ledger.apply("inc-1", [freeze("k1")])
    plaintexts = [value for r in rows for value in (r.api_key, r.secret, r.passphrase) if value]

    stored = stored_bytes(ledger)

    assert b"k1" in stored  # the scan does see the ledger's data
    leaked = [value for value in plaintexts if value.encode() in stored]
    assert leaked == []
    # ... and yet every secret opens again with the KEK
    for sealed in ledger.load_keys("inc-1", ["k1", "k2", "k3"]):
        assert ledger.open_secret(sealed, "api_key") == api_key_of(sealed.key_id)
        assert ledger.open_secret(sealed, "secret") == secret_of(sealed.key_id)
        assert "SECRET-" not in repr(sealed)


def test_ledger_survives_reopening_and_needs_its_kek(ledger_url: str) -> None:
    first = open_ledger(ledger_url, SecretBox(KEK))
    planned(first, [row("k1")])
    first.close()

    reopened = open_ledger(ledger_url, SecretBox(KEK))
    try:
        assert [k["key_id"] for k in reopened.list_keys()] == ["k1"]
        assert reopened.counts("inc-1") == {"binance": {"pending": 1}}
        [sealed] = reopened.load_keys("inc-1", ["k1"])
        assert reopened.open_secret(sealed, "secret") == secret_of("k1")
    finally:
        reopened.close()

    stranger = open_ledger(ledger_url, SecretBox(KeyEncryptionKey.generate()))
    try:
        [sealed] = stranger.load_keys("inc-1", ["k1"])
        with pytest.raises(SecretStoreError) as caught:
            stranger.open_secret(sealed, "secret")
        assert secret_of("k1") not in str(caught.value)
    finally:
        stranger.close()


def test_a_failed_import_keeps_all_or_none_of_its_rows(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.import_rows([row("k1")], SOURCE)
    seals = 0
    real_seal = ledger.box.seal

    def failing_seal(plaintext: str, context: str) -> str:
        nonlocal seals
        seals += 1
        if seals > 4:  # the second new row's secrets
            raise RuntimeError("disk on fire")
        return real_seal(plaintext, context)

    monkeypatch.setattr(ledger.box, "seal", failing_seal)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ledger.import_rows([row("k2"), row("k3"), row("k4")], SOURCE)
    monkeypatch.undo()

    assert [k["key_id"] for k in ledger.list_keys()] == ["k1"]  # k2, written before the failure, rolled back; k1 kept
    assert ledger.import_rows([row("k2"), row("k3")], SOURCE).added == 2  # and the ledger still works


def test_unknown_url_scheme_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="sqlite:///"):
        open_ledger(f"mysql://{tmp_path}", SecretBox(KEK))


# --- incidents and planning -------------------------------------------------------------------------


def test_create_incident_is_idempotent_and_refuses_another_scope(ledger: Ledger) -> None:
    record, created = ledger.create_incident("inc-1", ["Binance", "bybit"], ["bob", "alice"], "commander")

    assert created
    assert record.venues == ("binance", "bybit")
    assert record.owners == 2
    assert record.created_by == "commander"

    again, created_again = ledger.create_incident("inc-1", ["bybit", "binance", "BINANCE"], ["alice", "bob"], "other")
    assert not created_again
    assert again == record

    with pytest.raises(IncidentConflictError, match="inc-1"):
        ledger.create_incident("inc-1", ["binance"], ["alice", "bob"], "commander")
    with pytest.raises(IncidentConflictError):
        ledger.create_incident("inc-1", ["binance", "bybit"], ["alice", "carol"], "commander")
    assert ledger.get_incident("inc-1") == record
    assert [e["kind"] for e in ledger.events("inc-1")] == ["incident.created"]


def test_unknown_incident(ledger: Ledger) -> None:
    assert ledger.get_incident("nope") is None
    with pytest.raises(InputError, match="nope"):
        ledger.plan_incident("nope")


def test_plan_is_scoped_by_venue(ledger: Ledger) -> None:
    ledger.import_rows([row("b1"), row("b2"), row("y1", venue="bybit"), row("y2", venue="bybit")], SOURCE)
    ledger.create_incident("inc-1", ["bybit"], [], "tester")

    assert ledger.plan_incident("inc-1") == {"bybit": 2}
    assert ledger.counts("inc-1") == {"bybit": {"pending": 2}}
    assert ledger.load_page("inc-1", "binance", 0, 100) == []


def test_plan_is_scoped_by_owners(ledger: Ledger) -> None:
    ledger.import_rows(
        [
            row("a1", owner="alice"),
            row("a2", owner="alice", venue="bybit"),
            row("b1", owner="bob"),
            row("c1", owner="carol", venue="bybit"),
        ],
        SOURCE,
    )
    ledger.create_incident("inc-1", [], ["alice", "carol", "nobody"], "tester")

    assert ledger.plan_incident("inc-1") == {"binance": 1, "bybit": 2}
    assert sorted(s.key_id for s in ledger.key_statuses("inc-1")) == ["a1", "a2", "c1"]


def test_plan_by_venue_and_owners_and_without_scope(ledger: Ledger) -> None:
    ledger.import_rows([row("a1"), row("a2", venue="bybit"), row("b1", owner="bob")], SOURCE)
    ledger.create_incident("both", ["binance"], ["alice"], "tester")
    ledger.create_incident("all", [], [], "tester")

    assert ledger.plan_incident("both") == {"binance": 1}
    assert ledger.plan_incident("all") == {"binance": 2, "bybit": 1}


def test_plan_twice_adds_nothing_and_a_later_plan_continues_the_numbering(ledger: Ledger) -> None:
    ledger.import_rows([row("k1", priority=1), row("k2", priority=2)], SOURCE)
    ledger.create_incident("inc-1", [], [], "tester")
    assert ledger.plan_incident("inc-1") == {"binance": 2}
    first = ledger.load_page("inc-1", "binance", 0, 100)

    assert ledger.plan_incident("inc-1") == {"binance": 2}
    assert ledger.load_page("inc-1", "binance", 0, 100) == first

    ledger.import_rows([row("k0", priority=100), row("k9", venue="bybit")], SOURCE)  # arrives late
    assert ledger.plan_incident("inc-1") == {"binance": 3, "bybit": 1}
    page = ledger.load_page("inc-1", "binance", 0, 100)
    assert page[:2] == first
    assert page[2][0] == "k0"
    assert page[2][1] > first[-1][1]  # after the keys already being worked on
    assert ledger.counts("inc-1") == {"binance": {"pending": 3}, "bybit": {"pending": 1}}


def test_seq_orders_each_venue_by_priority_descending(ledger: Ledger) -> None:
    ledger.import_rows(
        [
            row("low", priority=-5),
            row("mid-b", priority=10),
            row("high", priority=1000),
            row("mid-a", priority=10),
            row("zero"),
            row("y-low", venue="bybit", priority=1),
            row("y-high", venue="bybit", priority=7),
        ],
        SOURCE,
    )
    ledger.create_incident("inc-1", [], [], "tester")
    ledger.plan_incident("inc-1")

    binance = ledger.load_page("inc-1", "binance", 0, 100)
    assert [key_id for key_id, _ in binance] == ["high", "mid-a", "mid-b", "zero", "low"]
    assert [seq for _, seq in binance] == sorted(seq for _, seq in binance)
    assert len({seq for _, seq in binance}) == 5
    assert [key_id for key_id, _ in ledger.load_page("inc-1", "bybit", 0, 100)] == ["y-high", "y-low"]
    assert [s.key_id for s in ledger.key_statuses("inc-1")] == [
        "high",
        "mid-a",
        "mid-b",
        "zero",
        "low",
        "y-high",
        "y-low",
    ]


def test_load_page_pages_through_every_key_once(ledger: Ledger) -> None:
    ids = [f"k{n:02d}" for n in range(7)]
    planned(ledger, [row(key_id, priority=-n) for n, key_id in enumerate(ids)] + [row("y1", venue="bybit")])

    pages = all_pages(ledger, "inc-1", "binance", limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [key_id for page in pages for key_id, _ in page] == ids
    last_seq = pages[-1][-1][1]
    assert ledger.load_page("inc-1", "binance", last_seq, 3) == []
    assert ledger.load_page("inc-1", "kraken", 0, 3) == []
    assert ledger.load_page("other-incident", "binance", 0, 3) == []


def test_load_keys_returns_sealed_keys_in_the_order_asked(ledger: Ledger) -> None:
    planned(ledger, [row("k1"), row("k2", venue="bybit", method="sub"), row("k3")])

    keys = ledger.load_keys("inc-1", ["k3", "missing", "k2"])

    assert [k.key_id for k in keys] == ["k3", "k2"]
    k3, k2 = keys
    assert (k2.venue, k2.method, k2.account_name, k2.state, k2.baseline_ok) == (
        "bybit",
        "sub",
        "acct-k2",
        "pending",
        None,
    )
    assert k3.fingerprint == row("k3").fingerprint
    assert ledger.open_secret(k2, "passphrase") == passphrase_of("k2")
    assert ledger.open_secret(k3, "passphrase") == ""
    assert ledger.load_keys("inc-1", []) == []
    assert ledger.load_keys("other-incident", ["k1"]) == []


# --- state changes, events, progress ----------------------------------------------------------------


def test_apply_moves_only_keys_in_an_allowed_state(ledger: Ledger) -> None:
    planned(ledger, [row("k1"), row("k2"), row("k3")])

    assert ledger.apply("inc-1", [freeze("k1"), freeze("k2")]) == ["k1", "k2"]
    revoke = Transition("k1", "binance", KeyState.REVOKED, (KeyState.REVOKING,), "key.revoked")
    wrong_state = Transition("k3", "binance", KeyState.REVOKING, (KeyState.FROZEN,), "key.baseline")
    assert ledger.apply("inc-1", [revoke, wrong_state]) == []  # k1 is frozen, k3 pending: neither moves
    assert ledger.apply("inc-1", [freeze("nope")]) == []

    assert {s.key_id: s.state for s in ledger.key_statuses("inc-1")} == {
        "k1": "frozen",
        "k2": "frozen",
        "k3": "pending",
    }
    assert [(e["kind"], e["key_id"]) for e in ledger.events("inc-1") if e["key_id"]] == [
        ("key.frozen", "k1"),
        ("key.frozen", "k2"),
    ]


def test_a_replayed_transition_is_a_no_op_with_no_second_event(ledger: Ledger) -> None:
    planned(ledger, [row("k1"), row("k2")])
    batch = [
        freeze("k1"),
        Transition(
            "k2", "binance", KeyState.REVOKING, (KeyState.PENDING, KeyState.FROZEN), "key.baseline", "probe ok",
            {"baseline_ok": 1, "permissions": "read,trade", "baseline_at": "2026-01-01T00:00:00.000+00:00"},
        ),
    ]  # fmt: skip
    assert ledger.apply("inc-1", batch, actor="worker-1") == ["k1", "k2"]
    events = ledger.events("inc-1")
    statuses = list(ledger.key_statuses("inc-1"))

    assert ledger.apply("inc-1", batch, actor="worker-1") == []  # the retried activity

    assert ledger.events("inc-1") == events
    assert list(ledger.key_statuses("inc-1")) == statuses
    [baseline] = ledger.events("inc-1", key_id="k2")
    assert (baseline["kind"], baseline["actor"], baseline["venue"], baseline["detail"]) == (
        "key.baseline",
        "worker-1",
        "binance",
        "probe ok",
    )
    k2 = next(s for s in statuses if s.key_id == "k2")
    assert (k2.state, k2.baseline_ok, k2.permissions, k2.baseline_at) == (
        "revoking",
        True,
        "read,trade",
        "2026-01-01T00:00:00.000+00:00",
    )


def test_a_whole_life_ends_in_a_final_state(ledger: Ledger) -> None:
    planned(ledger, [row("k1")])
    steps = [
        freeze("k1"),
        Transition("k1", "binance", KeyState.REVOKING, (KeyState.FROZEN,), "key.baseline", fields={"baseline_ok": 1}),
        Transition("k1", "binance", KeyState.REVOKED, (KeyState.REVOKING,), "key.revoked", fields={"revoked_at": "t1"}),
        Transition(
            "k1", "binance", KeyState.CONFIRMED, (KeyState.REVOKED,), "key.confirmed", fields={"ended_at": "t2"}
        ),
    ]
    for step in steps:
        assert ledger.apply("inc-1", [step]) == ["k1"]

    [status] = ledger.key_statuses("inc-1")
    assert (status.state, status.revoked_at, status.ended_at) == ("confirmed", "t1", "t2")
    assert [e["kind"] for e in ledger.events("inc-1", key_id="k1")] == [
        "key.frozen",
        "key.baseline",
        "key.revoked",
        "key.confirmed",
    ]
    event_ids = [e["n"] for e in ledger.events("inc-1")]
    assert event_ids == sorted(event_ids)
    assert event_ids == list(range(1, len(event_ids) + 1))  # numbered without gaps: the hash chain


def test_a_transaction_that_fails_midway_writes_nothing(ledger: Ledger) -> None:
    planned(ledger, [row("k1"), row("k2")])
    ledger.apply("inc-1", [freeze("k1")])
    events_before = ledger.events("inc-1")
    bad = Transition("k2", "binance", KeyState.FROZEN, (KeyState.PENDING,), "key.frozen", fields={"state": "x"})
    good = Transition("k1", "binance", KeyState.REVOKING, (KeyState.FROZEN,), "key.baseline")

    with pytest.raises(ValueError, match="not a key field"):
        ledger.apply("inc-1", [good, bad])

    assert {s.key_id: s.state for s in ledger.key_statuses("inc-1")} == {"k1": "frozen", "k2": "pending"}
    assert ledger.events("inc-1") == events_before  # the earlier move and its event are still there
    assert ledger.apply("inc-1", [good]) == ["k1"]  # the connection is usable afterwards


def test_incidents_do_not_see_each_others_keys(ledger: Ledger) -> None:
    planned(ledger, [row("k1")], incident="inc-1")
    ledger.create_incident("inc-2", [], [], "tester")
    ledger.plan_incident("inc-2")

    ledger.apply("inc-1", [freeze("k1")])

    assert ledger.counts("inc-1") == {"binance": {"frozen": 1}}
    assert ledger.counts("inc-2") == {"binance": {"pending": 1}}
    assert [e["kind"] for e in ledger.events("inc-2")] == ["incident.created", "incident.planned"]


def test_counts_per_venue_and_state(ledger: Ledger) -> None:
    planned(ledger, [row("b1"), row("b2"), row("b3"), row("y1", venue="bybit"), row("y2", venue="bybit")])
    ledger.apply(
        "inc-1",
        [
            freeze("b1"),
            freeze("b2"),
            freeze("y1", "bybit"),
            Transition("y2", "bybit", KeyState.FAILED, (KeyState.PENDING,), "key.failed", "bad method"),
        ],
    )

    assert ledger.counts("inc-1") == {
        "binance": {"frozen": 2, "pending": 1},
        "bybit": {"failed": 1, "frozen": 1},
    }
    assert list(ledger.counts("inc-1")) == ["binance", "bybit"]
    assert ledger.counts("no-such-incident") == {}


def test_key_statuses_carry_the_evidence_and_no_secret(ledger: Ledger) -> None:
    planned(ledger, [row("k1", owner="alice", priority=3), row("k2", venue="bybit", owner="bob")])
    ledger.apply(
        "inc-1",
        [Transition("k2", "bybit", KeyState.ESCALATED, (KeyState.PENDING,), "key.escalated", detail="venue said no",
                    fields={"detail": "10005 permission denied"})],
    )  # fmt: skip

    statuses = {s.key_id: s for s in ledger.key_statuses("inc-1")}

    k1, k2 = statuses["k1"], statuses["k2"]
    assert (k1.venue, k1.owner, k1.account_name, k1.method, k1.priority) == ("binance", "alice", "acct-k1", "broker", 3)
    assert (k1.state, k1.baseline_ok, k1.revoked_at, k1.detail) == ("pending", None, None, "")
    assert k1.fingerprint.startswith("sha256:")
    assert k1.key_hint == "APIK…0c5a"
    assert (k2.state, k2.detail) == ("escalated", "10005 permission denied")
    text = repr(list(statuses.values()))
    for key_id in ("k1", "k2"):
        assert secret_of(key_id) not in text
        assert api_key_of(key_id) not in text
        assert passphrase_of(key_id) not in text


def test_rekey_reseals_every_secret_under_the_new_key(tmp_path: Path) -> None:
    inventory = tmp_path / "keys.csv"
    inventory.write_text(
        "key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n"
        "r1,binance,alice,11,APIKEYAPIKEYAPIKEY01,SECRETSECRETSECRET01,,,\n"
        "r2,bybit,bob,12,APIKEYAPIKEYAPIKEY02,SECRETSECRETSECRET02,,self,\n"
    )
    rows, errors = read_inventory(inventory)
    assert not errors
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    old, new = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
    ledger = open_ledger(url, SecretBox(old))
    ledger.import_rows(rows, str(inventory))
    assert ledger.rekey(SecretBox(new)) == 2
    ledger.close()

    reopened = open_ledger(url, SecretBox(new))
    reopened.create_incident("rk", [], [], "tester")
    reopened.plan_incident("rk")
    key = reopened.load_keys("rk", ["r1"])[0]
    assert reopened.open_secret(key, "secret") == "SECRETSECRETSECRET01"
    again = reopened.import_rows(rows, str(inventory))
    assert (again.added, again.unchanged, again.errors) == (0, 2, [])  # digests follow the new key
    reopened.close()

    stale = open_ledger(url, SecretBox(old))
    with pytest.raises(SecretStoreError):
        stale.open_secret(stale.load_keys("rk", ["r1"])[0], "secret")
    stale.close()


def test_the_states_a_confirm_is_checked_against(ledger: Ledger) -> None:
    """What ``incident confirm`` reads: each listed key's venue and state, and whether a packet went out."""
    planned(ledger, [row("k1"), row("k2"), row("k3", venue="bybit")])
    assert ledger.apply("inc-1", [freeze("k1")]) == ["k1"]
    listed = ["k1", "k3", "nope", *(f"filler-{n}" for n in range(600))]  # more than one query's worth
    assert ledger.incident_key_states("inc-1", listed) == {
        "k1": ("binance", KeyState.FROZEN),
        "k3": ("bybit", KeyState.PENDING),
    }
    assert ledger.incident_key_states("other", ["k1"]) == {}
    assert not ledger.has_event("inc-1", "venue.escalated", "binance")
    ledger.append_event("inc-1", "keyrevoke", "venue.escalated", "binance", "", "2 keys escalated")
    assert ledger.has_event("inc-1", "venue.escalated", "binance")
    assert not ledger.has_event("inc-1", "venue.escalated", "bybit")
def test_pods_opening_a_fresh_ledger_at_once_all_open_it(ledger_url: str) -> None:
    """Every pod of a new deployment starts together and creates the schema if missing: none may fail."""
    from concurrent.futures import ThreadPoolExecutor

    from keyrevoke.ledger.database import Database

    barrier = threading.Barrier(8)

    def open_one(_: int) -> Database:
        barrier.wait()
        return Database(ledger_url)

    with ThreadPoolExecutor(8) as pool:
        databases = list(pool.map(open_one, range(8)))
    assert len(databases) == 8
    for database in databases:
        database.close()


def test_workers_reserving_a_new_venues_first_slots_at_once_all_get_slots_of_their_own(ledger_url: str) -> None:
    """Workers starting together at a venue nobody has paced yet: none fails, no two slots coincide."""
    from concurrent.futures import ThreadPoolExecutor

    from keyrevoke.ledger.store import PaceAsk

    ledgers = [open_ledger(ledger_url, SecretBox(KeyEncryptionKey.generate())) for _ in range(6)]
    barrier = threading.Barrier(len(ledgers))

    def reserve(number: int) -> float:
        barrier.wait()
        ask = PaceAsk(f"pacer-{number}", 30.0, 10, 0, 10)
        return ledgers[number].reserve_pace("gate", 2, 0.1, ask).first

    try:
        with ThreadPoolExecutor(len(ledgers)) as pool:
            firsts = sorted(pool.map(reserve, range(len(ledgers))))
    finally:
        for ledger in ledgers:
            ledger.close()
    assert all(later - earlier >= 0.2 - 1e-6 for earlier, later in itertools.pairwise(firsts))
