"""An incident in a real SQLite ledger, its keys moved the way the batch activities move them."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keyrevoke.crypto import KeyEncryptionKey, SecretBox
from keyrevoke.inventory import parse_row
from keyrevoke.ledger import Ledger, open_ledger
from keyrevoke.ledger.store import Transition
from keyrevoke.report import ReportFiles, write_report
from keyrevoke.states import KeyState as S

KEK = KeyEncryptionKey(bytes(range(32)))
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
INCIDENT = "inc-1"

# key id -> the events that move it, in order (what prepare, revoke and verify batches record)
PATHS: dict[str, list[tuple[S, tuple[S, ...], str]]] = {
    "confirmed": [
        (S.FROZEN, (S.PENDING,), "key.frozen"),
        (S.REVOKING, (S.FROZEN,), "key.baseline"),
        (S.REVOKED, (S.REVOKING,), "key.revoked"),
        (S.CONFIRMED, (S.REVOKED,), "key.confirmed"),
    ],
    "escalated": [
        (S.FROZEN, (S.PENDING,), "key.frozen"),
        (S.REVOKING, (S.FROZEN,), "key.baseline"),
        (S.ESCALATED, (S.REVOKING,), "key.escalated"),
    ],
    "live": [
        (S.FROZEN, (S.PENDING,), "key.frozen"),
        (S.REVOKING, (S.FROZEN,), "key.baseline"),
        (S.REVOKED, (S.REVOKING,), "key.revoked"),
        (S.REVOKED, (S.REVOKED,), "key.verify.live"),
        (S.LIVE, (S.REVOKED,), "key.live"),
    ],
    "unfrozen": [(S.FROZEN, (S.PENDING,), "key.frozen"), (S.UNFROZEN, (S.FROZEN,), "key.unfrozen")],
    "pending": [],
}


def incident_ledger(folder: Path, per_path: int = 3, owner: str = "alice", url: str | None = None) -> Ledger:
    """A ledger with one incident whose keys end in each state of ``PATHS`` (``per_path`` of each)."""
    ledger = open_ledger(url or f"sqlite:///{folder / 'ledger.db'}", SecretBox(KEK))
    rows = []
    for number, (path, _) in enumerate((p, i) for p in PATHS for i in range(per_path)):
        key_id = f"{path}-{number}"
        venue = "binance" if number % 2 else "kraken"
        raw = {
            "key_id": key_id,
            "venue": venue,
            "owner": owner,
            "account": f"{1000 + number}",
            "api_key": f"APIKEY-{key_id}-4b8e6d0c5a",
            "secret": f"SECRET-{key_id}-9f3c2a7d1e",
            "passphrase": "",
            "priority": str(number % 3),
        }
        rows.append(parse_row(raw, "inventory.csv", number + 2))
    assert ledger.import_rows(rows, "inventory.csv").errors == []
    ledger.create_incident(INCIDENT, [], [], "alice")
    ledger.plan_incident(INCIDENT)
    for row in rows:
        for to_state, from_states, kind in PATHS[row.key_id.split("-")[0]]:
            moved = ledger.apply(INCIDENT, [Transition(row.key_id, row.venue, to_state, from_states, kind, "detail")])
            assert moved == [row.key_id]
    ledger.append_event(INCIDENT, "alice", "incident.note", detail="the commander's note")
    return ledger


def signed_report(folder: Path, per_path: int = 3, owner: str = "alice") -> ReportFiles:
    ledger = incident_ledger(folder, per_path, owner)
    try:
        return write_report(ledger, INCIDENT, folder / "report", SIGNING_KEY)
    finally:
        ledger.close()
