"""The commander's reads and the closing of keys, on both ledger back ends: SQL, so PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyrevoke.crypto import SecretBox
from keyrevoke.errors import InputError
from keyrevoke.ledger import Ledger, open_ledger
from keyrevoke.ledger.overview import close_keys, list_incidents, page_keys, scope_preview
from keyrevoke.ledger.store import Transition
from keyrevoke.states import KeyState
from tests.test_ledger import KEK, SOURCE, row


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = open_ledger(ledger_url, SecretBox(KEK))
    try:
        yield opened
    finally:
        opened.close()


def _end(ledger: Ledger, incident: str, key_id: str, venue: str, state: KeyState) -> None:
    moved = ledger.apply(incident, [Transition(key_id, venue, state, (KeyState.PENDING,), f"key.{state.value}")])
    assert moved == [key_id]


def test_a_new_incident_leaves_out_keys_an_earlier_one_confirmed_unless_asked(ledger: Ledger) -> None:
    rows = [row("a1"), row("a2"), row("a3", owner="bob"), row("b1", venue="bybit")]
    assert ledger.import_rows(rows, SOURCE).errors == []
    ledger.create_incident("first", [], [], "tester")
    ledger.plan_incident("first")
    _end(ledger, "first", "a1", "binance", KeyState.CONFIRMED)
    _end(ledger, "first", "a2", "binance", KeyState.ESCALATED)  # may still work: stays in scope
    _end(ledger, "first", "b1", "bybit", KeyState.CLOSED)

    preview = {v.venue: v for v in scope_preview(ledger, [], [])}
    assert (preview["binance"].keys, preview["binance"].handled_before) == (2, 1)
    assert (preview["bybit"].keys, preview["bybit"].handled_before) == (0, 1)
    assert preview["binance"].methods == {"broker": 2}
    only_bob = scope_preview(ledger, ["binance"], ["bob"])
    assert [(v.venue, v.keys, v.handled_before) for v in only_bob] == [("binance", 1, 0)]
    assert scope_preview(ledger, [], ["nobody"]) == []

    ledger.create_incident("second", [], [], "tester", exclude_handled=True)
    assert ledger.plan_incident("second") == {"binance": 2}
    ledger.create_incident("third", [], [], "tester")
    assert ledger.plan_incident("third") == {"binance": 3, "bybit": 1}
    # The flag is part of the scope: the same id with it and without it are two different scopes.
    assert ledger.create_incident("second", [], [], "other", exclude_handled=True)[1] is False

    listed = {i.incident_id: i.counts for i in list_incidents(ledger, 10)}
    assert listed["first"] == {"confirmed": 1, "escalated": 1, "pending": 1, "closed": 1}
    assert listed["second"] == {"pending": 2}


def test_keys_come_page_by_page_and_a_person_closes_them_on_record(ledger: Ledger) -> None:
    rows = [row(f"k{n:02}", line=n + 2) for n in range(7)] + [row("y1", venue="bybit", line=20)]
    assert ledger.import_rows(rows, SOURCE).errors == []
    ledger.create_incident("inc", [], [], "tester")
    ledger.plan_incident("inc")
    _end(ledger, "inc", "k03", "binance", KeyState.LIVE)

    every = [k.key_id for k in page_keys(ledger, "inc", page_size=3)]
    assert sorted(every) == sorted(r.key_id for r in rows)
    assert len(every) == len(set(every))
    assert [k.key_id for k in page_keys(ledger, "inc", KeyState.LIVE, page_size=1)] == ["k03"]
    assert [k.key_id for k in page_keys(ledger, "inc", venue="bybit", page_size=1)] == ["y1"]

    with pytest.raises(InputError, match="not keys of incident inc: nope; nothing was closed"):
        close_keys(ledger, "inc", ["k03", "nope"], "carol", "owner deleted it")
    assert next(page_keys(ledger, "inc", KeyState.LIVE)).key_id == "k03"
    with pytest.raises(InputError, match="--reason"):
        close_keys(ledger, "inc", ["k03"], "carol", " ")

    done = close_keys(ledger, "inc", ["k03", "k03"], "carol", "owner deleted it")
    assert (done.closed, done.already_handled) == (1, 0)
    again = close_keys(ledger, "inc", ["k03"], "carol", "twice")
    assert (again.closed, again.already_handled) == (0, 1)
    closed = next(page_keys(ledger, "inc", KeyState.CLOSED))
    assert closed.key_id == "k03"
    assert closed.detail == "closed by carol: owner deleted it"
    events = [e for e in ledger.events("inc", "k03") if e["kind"] == "key.closed"]
    assert [(e["actor"], '"reason": "owner deleted it"' in e["detail"]) for e in events] == [("carol", True)]
