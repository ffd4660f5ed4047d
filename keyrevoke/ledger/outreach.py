"""What the ledger holds for telling the exchanges and the owners: paged reads and delivery records.

Every read here is a page (bounded, in index order), so a packet or a round of owner notices over a
million keys never holds more than a page of them. Deliveries are recorded with their event in one
transaction, and looked up by content digest: sending the same thing again is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from keyrevoke.ledger.store import Ledger, utc_now
from keyrevoke.states import KeyState

#: A venue's escalation is on record with one of these: its packet written, or why none went out.
ESCALATION_WRITTEN = "venue.escalated"
ESCALATION_UNSENT = "escalation.packet.unsent"


@dataclass(frozen=True, repr=False)
class EscalatedKey:
    """One key of an escalation packet, its API key still sealed."""

    seq: int
    key_id: str
    owner: str
    account_id: str  # the account's numeric user id (uid)
    account_name: str  # the sub-account's name
    method: str
    key_hint: str
    api_key_sealed: str
    state: str
    permissions: str
    baseline_detail: str  # the baseline probe's line: what the venue said of the key (IP binding included)

    def __repr__(self) -> str:
        return f"EscalatedKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class OwnerKey:
    """One key of an owner in an incident, as an owner notice lists it."""

    venue: str
    key_id: str
    key_hint: str
    state: str


def escalation_happened(ledger: Ledger, incident_id: str, venue: str) -> bool:
    """Whether the venue's escalation happened (a packet written, or why none was): it waits for the exchange."""
    return any(ledger.has_event(incident_id, kind, venue) for kind in (ESCALATION_WRITTEN, ESCALATION_UNSENT))


def count_in_state(ledger: Ledger, incident_id: str, venue: str, state: KeyState) -> int:
    rows = ledger.db.query(
        "SELECT COUNT(*) FROM incident_keys WHERE incident_id = ? AND venue = ? AND state = ?",
        (incident_id, venue, state.value),
    )
    return int(rows[0][0])


def escalated_page(ledger: Ledger, incident_id: str, venue: str, after_seq: int, limit: int) -> list[EscalatedKey]:
    """The next ``limit`` escalated keys of a venue after ``after_seq``, with their baseline probe's line."""
    rows = ledger.db.query(
        "SELECT ik.seq, k.key_id, k.owner, k.account_id, k.account_name, k.method, k.key_hint, k.api_key_sealed,"
        " ik.state,"
        " ik.permissions,"
        " COALESCE((SELECT e.detail FROM events e WHERE e.incident_id = ik.incident_id AND e.key_id = ik.key_id"
        "  AND e.kind = 'key.baseline' ORDER BY e.n DESC LIMIT 1), '')"
        " FROM incident_keys ik JOIN keys k ON k.key_id = ik.key_id"
        " WHERE ik.incident_id = ? AND ik.venue = ? AND ik.state = ? AND ik.seq > ? ORDER BY ik.seq LIMIT ?",
        (incident_id, venue, KeyState.ESCALATED.value, after_seq, limit),
    )
    return [EscalatedKey(int(row[0]), *(str(value or "") for value in row[1:])) for row in rows]


def packet_sent(ledger: Ledger, incident_id: str, venue: str, digest: str) -> tuple[str, str, str] | None:
    """(recipient, message id, time) if the packet part with this content digest was mailed already."""
    rows = ledger.db.query(
        "SELECT recipient, message_id, sent_at FROM packet_deliveries WHERE incident_id = ? AND venue = ?"
        " AND digest = ?",
        (incident_id, venue, digest),
    )
    return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


def record_packet_sent(
    ledger: Ledger,
    incident_id: str,
    venue: str,
    part: int,
    digest: str,
    file_name: str,
    recipient: str,
    message_id: str,
    detail: str,
) -> None:
    """Record a mailed packet part and its event (``escalation.packet.sent``) in one transaction."""
    now = utc_now()
    with ledger.db.transaction() as tx:
        tx.execute(
            "INSERT INTO packet_deliveries (incident_id, venue, part, digest, file, recipient, message_id, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, venue, part, digest, file_name, recipient, message_id, now),
        )
        ledger._event(tx, incident_id, "keyrevoke", "escalation.packet.sent", venue, "", detail, now)


def owner_page(ledger: Ledger, incident_id: str, venue: str, after_seq: int, limit: int) -> tuple[list[str], int]:
    """The owners of the next ``limit`` keys of a venue after ``after_seq`` (each once), and the new cursor."""
    rows = ledger.db.query(
        "SELECT ik.seq, k.owner FROM incident_keys ik JOIN keys k ON k.key_id = ik.key_id"
        " WHERE ik.incident_id = ? AND ik.venue = ? AND ik.seq > ? ORDER BY ik.seq LIMIT ?",
        (incident_id, venue, after_seq, limit),
    )
    if not rows:
        return [], after_seq
    return list(dict.fromkeys(str(row[1]) for row in rows)), int(rows[-1][0])


#: Owners per ``IN (...)`` list: always this many marks (the last owner repeated), so that the database's
#: statement cache holds one statement, not one per list length.
OWNERS_AT_ONCE = 50


def _owner_chunks(owners: Sequence[str]) -> list[tuple[str, ...]]:
    chunks = []
    for start in range(0, len(owners), OWNERS_AT_ONCE):
        chunk = tuple(owners[start : start + OWNERS_AT_ONCE])
        chunks.append(chunk + (chunk[-1],) * (OWNERS_AT_ONCE - len(chunk)))
    return chunks


_OWNER_MARKS = ", ".join("?" for _ in range(OWNERS_AT_ONCE))


def owner_keys(ledger: Ledger, incident_id: str, owners: Sequence[str]) -> dict[str, list[OwnerKey]]:
    """Every key of these owners in the incident, by owner, in venue and plan order."""
    found: dict[str, list[OwnerKey]] = {}
    for chunk in _owner_chunks(owners):
        rows = ledger.db.query(
            "SELECT k.owner, ik.venue, k.key_id, k.key_hint, ik.state"  # noqa: S608 - placeholders only
            " FROM keys k JOIN incident_keys ik ON ik.key_id = k.key_id AND ik.incident_id = ?"
            f" WHERE k.owner IN ({_OWNER_MARKS}) ORDER BY k.owner, ik.venue, ik.seq",
            (incident_id, *chunk),
        )
        for owner, venue, key_id, hint, state in rows:
            found.setdefault(str(owner), []).append(OwnerKey(str(venue), str(key_id), str(hint), str(state)))
    return found


def owner_emails(ledger: Ledger, owners: Sequence[str]) -> dict[str, str]:
    """The mail address the inventory holds for each of these owners (owners without one are left out)."""
    found: dict[str, str] = {}
    for chunk in _owner_chunks(owners):
        rows = ledger.db.query(
            f"SELECT owner, MAX(email) FROM keys WHERE owner IN ({_OWNER_MARKS}) AND email <> '' GROUP BY owner",  # noqa: S608
            chunk,
        )
        found.update({str(owner): str(email) for owner, email in rows if email})
    return found


def claim_notice(ledger: Ledger, incident_id: str, owner: str, digest: str, stale_seconds: float = 300.0) -> bool:
    """Claim the sending of this notice; False if it was sent, or another sender holds it.

    Two venues ending at once may compose the same notice for one owner: the claim makes it one. A
    claim never completed (its sender died) may be taken again after ``stale_seconds``.
    """
    now = utc_now()
    stale = datetime.fromtimestamp(datetime.now(UTC).timestamp() - stale_seconds, UTC).isoformat(
        timespec="milliseconds"
    )
    with ledger.db.transaction() as tx:
        taken = tx.execute(
            "INSERT INTO owner_notices (incident_id, owner, digest, channels, sent_at) VALUES (?, ?, ?, '', ?)"
            " ON CONFLICT DO NOTHING",
            (incident_id, owner, digest, now),
        )
        if taken:
            return True
        return bool(
            tx.execute(
                "UPDATE owner_notices SET sent_at = ? WHERE incident_id = ? AND owner = ? AND digest = ?"
                " AND channels = '' AND sent_at < ?",
                (now, incident_id, owner, digest, stale),
            )
        )


def release_notice(ledger: Ledger, incident_id: str, owner: str, digest: str) -> None:
    """Give a claim back (nothing was delivered): the owner's next round tries again."""
    with ledger.db.transaction() as tx:
        tx.execute(
            "DELETE FROM owner_notices WHERE incident_id = ? AND owner = ? AND digest = ? AND channels = ''",
            (incident_id, owner, digest),
        )


def record_notice(
    ledger: Ledger, incident_id: str, owner: str, digest: str, channels: str, venue: str, detail: str
) -> None:
    """Record a claimed notice as sent, and its event (``owner.notified``), in one transaction."""
    now = utc_now()
    with ledger.db.transaction() as tx:
        tx.execute(
            "UPDATE owner_notices SET channels = ?, sent_at = ? WHERE incident_id = ? AND owner = ? AND digest = ?",
            (channels, now, incident_id, owner, digest),
        )
        ledger._event(tx, incident_id, "keyrevoke", "owner.notified", venue, "", detail, now)
