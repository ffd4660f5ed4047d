"""The ledger's operations: what the CLI, the activities and the report read and write.

Every state change is a conditional update (``WHERE state IN (...)``) with its event appended in the
same transaction, so a retried activity can never move a key twice or log a step twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keyrevoke.crypto import SecretBox, key_hint
from keyrevoke.errors import IncidentConflictError, InputError, InventoryRowError
from keyrevoke.evidence import GENESIS, event_hash, state_after
from keyrevoke.inventory import InventoryRow
from keyrevoke.ledger.database import Database
from keyrevoke.states import FINAL_STATES, KeyState
from keyrevoke.venue_fields import account_of, legacy_field

if TYPE_CHECKING:
    from keyrevoke.ledger.snapshot import IncidentSnapshot


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class PaceAsk:
    """What a venue's pacer tells the ledger when it reserves: who, for how long, and its window use."""

    pacer: str  # the pacer's id (one per worker and venue)
    active_seconds: float  # it counts as active this long, unless it asks again
    window: int  # the venue's whole window: requests counted at once, at all its workers together
    using: int  # this pacer's requests counted now (sent, or answered less than a second ago)
    wanted: int  # how many it could count at once now (those and the requests waiting)


@dataclass(frozen=True)
class PaceGrant:
    """Slots reserved for a venue's pacer, and the part of the venue's window it holds."""

    first: float  # the first slot reserved (epoch s); the others follow it ``interval`` apart
    held: int  # requests this pacer may count at once now: within its part of the venue's window and its fair part


def fair_part(window: int, wanted: int, others_wanted: list[int]) -> int:
    """A pacer's fair part of ``window``: equal parts among the pacers that want some, a part another
    pacer does not want going to those that want more (max-min fairness)."""
    left, wants = window, sorted([*others_wanted, wanted])
    for number, want in enumerate(wants):
        part = left // (len(wants) - number)
        if want >= part:
            # Everyone from here on wants at least an equal part of what is left: they split it, the
            # remainder going one each to the first (so the parts add up to what is left).
            rest = left - part * (len(wants) - number)
            return min(wanted, part + (1 if rest else 0)) if wanted >= part else wanted
        left -= want
    return wanted


@dataclass(frozen=True)
class ImportResult:
    added: int
    unchanged: int
    errors: list[InventoryRowError] = field(default_factory=list)


@dataclass(frozen=True, repr=False)
class SealedKey:
    """A key of an incident with its secrets still sealed, as a batch activity loads it."""

    key_id: str
    venue: str
    account_id: str  # the numeric user id (uid) of the key's account
    account_name: str  # the sub-account's name
    method: str
    fingerprint: str
    api_key_sealed: str
    secret_sealed: str
    passphrase_sealed: str
    state: KeyState
    baseline_ok: bool | None
    revoked_at: str | None = None
    permissions: str = ""  # from the baseline probe, comma-separated
    priority: int = 0  # the inventory's: higher goes first

    def __repr__(self) -> str:
        return f"SealedKey(key_id={self.key_id!r}, state={self.state.value})"

    @property
    def account(self) -> str:
        """The account as the venue knows it (keyrevoke.venue_fields)."""
        return account_of(self.venue, self.method, self.account_id, self.account_name)


@dataclass(frozen=True)
class KeyStatus:
    """One key's line in the evidence report: everything but secrets."""

    key_id: str
    venue: str
    owner: str
    account_id: str
    account_name: str
    method: str
    priority: int
    fingerprint: str
    key_hint: str
    state: str
    baseline_ok: bool | None
    permissions: str
    baseline_at: str | None
    revoked_at: str | None
    ended_at: str | None
    detail: str
    updated_at: str

    @property
    def account(self) -> str:
        """The account as the venue knows it (keyrevoke.venue_fields)."""
        return account_of(self.venue, self.method, self.account_id, self.account_name)


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    venues: tuple[str, ...]
    owners: int
    created_at: str
    created_by: str
    exclude_handled: bool = False  # keys confirmed dead or closed in another incident stay out of its plan


@dataclass(frozen=True)
class Transition:
    """Move one key to ``to_state`` if it is in one of ``from_states``; log ``event`` if it moved."""

    key_id: str
    venue: str
    to_state: KeyState
    from_states: tuple[KeyState, ...]
    event: str
    detail: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


_UPDATABLE_FIELDS = frozenset({"baseline_ok", "permissions", "baseline_at", "revoked_at", "ended_at", "detail"})


class Ledger:
    """The ledger over one database, with the box that seals and opens secrets."""

    def __init__(self, database: Database, box: SecretBox) -> None:
        self.db = database
        self.box = box

    # --- inventory ----------------------------------------------------------------------------

    def _digest(self, row: InventoryRow, box: SecretBox | None = None) -> str:
        # Keyed, so the digest of a secret is no oracle for guessing it.
        parts = [row.venue, row.owner, row.account, row.method, str(row.priority)]
        parts += [row.api_key, row.secret, row.passphrase]
        if (row.account_id, row.account_name) != _legacy_split(row) or row.email:
            # Only what an old single-``account`` row could not say extends the material: a row of an
            # old file, imported again after the ledger's migration, is still "unchanged".
            parts += [row.account_id, row.account_name, row.email]
        material = "\x1f".join(parts)
        return hmac.new((box or self.box).current.material, material.encode(), hashlib.sha256).hexdigest()

    def rekey(self, new_box: SecretBox) -> int:
        """Re-seal every secret under ``new_box``'s key-encryption key, in one transaction.

        Afterwards the ledger opens only with the new key: point KEYREVOKE_LEDGER_KEK(_FILE) at it.
        Returns the number of keys re-sealed.
        """
        names = ("api_key", "secret", "passphrase")
        count = 0
        with self.db.transaction() as tx:
            rows = tx.fetchall(
                "SELECT key_id, venue, owner, account_id, account_name, email, method, priority, api_key_sealed,"
                " secret_sealed, passphrase_sealed FROM keys ORDER BY key_id"
            )
            for key_id, venue, owner, account_id, account_name, email, method, priority, *sealed in rows:
                plain = {n: self.box.open(value, f"{key_id}/{n}") for n, value in zip(names, sealed, strict=True)}
                row = InventoryRow(
                    0,
                    key_id,
                    venue,
                    owner,
                    account_id,
                    account_name,
                    plain["api_key"],
                    plain["secret"],
                    plain["passphrase"],
                    method,
                    int(priority),
                    email,
                )
                tx.execute(
                    "UPDATE keys SET api_key_sealed = ?, secret_sealed = ?, passphrase_sealed = ?,"
                    " content_digest = ? WHERE key_id = ?",
                    (*(new_box.seal(plain[n], f"{key_id}/{n}") for n in names), self._digest(row, new_box), key_id),
                )
                count += 1
        self.box = new_box
        return count

    def import_rows(self, rows: Sequence[InventoryRow], source: str) -> ImportResult:
        """Add new rows; rows already present with the same content change nothing.

        A key_id (or API key) already imported with other content is reported, not overwritten.
        All rows of one call go in one transaction: a crash keeps all or none of them.
        """
        added = unchanged = 0
        errors: list[InventoryRowError] = []
        now = utc_now()
        with self.db.transaction() as tx:
            for row in rows:
                digest = self._digest(row)
                existing = tx.fetchall(
                    "SELECT key_id, content_digest FROM keys WHERE key_id = ? OR (venue = ? AND fingerprint = ?)",
                    (row.key_id, row.venue, row.fingerprint),
                )
                if existing:
                    same = [r for r in existing if r[0] == row.key_id and r[1] == digest]
                    if same and len(existing) == 1:
                        unchanged += 1
                        continue
                    other = next((r[0] for r in existing if r[0] != row.key_id), None)
                    reason = (
                        f"key {row.key_id}: same API key ({row.fingerprint}) already imported as key {other}"
                        if other
                        else f"key {row.key_id}: already imported with different data (the ledger keeps the first)"
                    )
                    errors.append(InventoryRowError(source, row.line, reason))
                    continue
                tx.execute(
                    "INSERT INTO keys (key_id, venue, owner, account, account_id, account_name, email, method,"
                    " priority, fingerprint, key_hint, content_digest, api_key_sealed, secret_sealed,"
                    " passphrase_sealed, imported_at, source)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.key_id,
                        row.venue,
                        row.owner,
                        row.account,  # the old single column, kept for older readers of the ledger
                        row.account_id,
                        row.account_name,
                        row.email,
                        row.method,
                        row.priority,
                        row.fingerprint,
                        key_hint(row.api_key),
                        digest,
                        self.box.seal(row.api_key, f"{row.key_id}/api_key"),
                        self.box.seal(row.secret, f"{row.key_id}/secret"),
                        self.box.seal(row.passphrase, f"{row.key_id}/passphrase"),
                        now,
                        source,
                    ),
                )
                added += 1
        return ImportResult(added=added, unchanged=unchanged, errors=errors)

    def list_keys(self, venue: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT key_id, venue, owner, account_id, account_name, email, method, priority, fingerprint, key_hint"
            " FROM keys"
        )
        params: tuple[Any, ...] = ()
        if venue:
            sql += " WHERE venue = ?"
            params = (venue,)
        names = (
            "key_id",
            "venue",
            "owner",
            "account_id",
            "account_name",
            "email",
            "method",
            "priority",
            "fingerprint",
            "key_hint",
        )
        listed = [dict(zip(names, row, strict=True)) for row in self.db.query(sql + " ORDER BY venue, key_id", params)]
        for entry in listed:
            entry["account"] = account_of(entry["venue"], entry["method"], entry["account_id"], entry["account_name"])
        return listed

    def open_secret(self, key: SealedKey, name: str) -> str:
        """Decrypt one sealed field (``api_key``, ``secret``, ``passphrase``) of ``key``."""
        sealed = {
            "api_key": key.api_key_sealed,
            "secret": key.secret_sealed,
            "passphrase": key.passphrase_sealed,
        }
        return self.box.open(sealed[name], f"{key.key_id}/{name}")

    # --- incidents ----------------------------------------------------------------------------

    def create_incident(
        self,
        incident_id: str,
        venues: Iterable[str],
        owners: Iterable[str],
        actor: str,
        exclude_handled: bool = False,
    ) -> tuple[IncidentRecord, bool]:
        """Record an incident's scope; returns the record and whether it was new.

        The same id with the same scope returns the existing record; with another scope it is refused.
        ``exclude_handled`` leaves out of the plan the keys another incident confirmed dead or a person closed.
        """
        venue_list = sorted({v.lower() for v in venues})
        owner_list = sorted(set(owners))
        owners_digest = hashlib.sha256("\n".join(owner_list).encode()).hexdigest()
        fields: dict[str, Any] = {"venues": venue_list, "owners": len(owner_list), "owners_sha256": owners_digest}
        if exclude_handled:  # only then, so that the scope of earlier incidents reads the same
            fields["exclude_handled"] = True
        scope = json.dumps(fields)
        with self.db.transaction() as tx:
            existing = tx.fetchall("SELECT scope FROM incidents WHERE incident_id = ?", (incident_id,))
            if existing:
                if existing[0][0] != scope:
                    raise IncidentConflictError(
                        f"incident {incident_id} already exists with another scope; choose a new incident id"
                    )
                created = False
            else:
                tx.execute(
                    "INSERT INTO incidents (incident_id, scope, created_at, created_by, chain_head, chain_length)"
                    " VALUES (?, ?, ?, ?, ?, 0)",
                    (incident_id, scope, utc_now(), actor, GENESIS),
                )
                tx.executemany(
                    "INSERT INTO incident_owners (incident_id, owner) VALUES (?, ?)",
                    [(incident_id, owner) for owner in owner_list],
                )
                self._event(tx, incident_id, actor, "incident.created", detail=scope)
                created = True
        record = self.get_incident(incident_id)
        assert record is not None
        return record, created

    def get_incident(self, incident_id: str) -> IncidentRecord | None:
        rows = self.db.query(
            "SELECT scope, created_at, created_by FROM incidents WHERE incident_id = ?", (incident_id,)
        )
        if not rows:
            return None
        scope = json.loads(rows[0][0])
        return IncidentRecord(
            incident_id,
            tuple(scope["venues"]),
            scope["owners"],
            rows[0][1],
            rows[0][2],
            bool(scope.get("exclude_handled", False)),
        )

    def chain_head(self, incident_id: str) -> tuple[str, int]:
        """The hash of the incident's last event and the number of events."""
        rows = self.db.query("SELECT chain_head, chain_length FROM incidents WHERE incident_id = ?", (incident_id,))
        if not rows:
            raise InputError(f"no incident {incident_id!r} in the ledger")
        return str(rows[0][0]), int(rows[0][1])

    def require_incident(self, incident_id: str) -> IncidentRecord:
        record = self.get_incident(incident_id)
        if record is None:
            raise InputError(f"no incident {incident_id!r} in the ledger")
        return record

    def plan_incident(self, incident_id: str) -> dict[str, int]:
        """Put every key in the incident's scope into it (once), numbered per venue, riskiest first."""
        record = self.require_incident(incident_id)
        conditions = []
        params: list[Any] = [KeyState.PENDING.value, utc_now()]
        if record.venues:
            conditions.append(f"k.venue IN ({', '.join('?' for _ in record.venues)})")
            params.extend(record.venues)
        if record.owners:
            conditions.append("k.owner IN (SELECT owner FROM incident_owners WHERE incident_id = ?)")
            params.append(incident_id)
        if record.exclude_handled:
            conditions.append(
                "k.key_id NOT IN (SELECT key_id FROM incident_keys WHERE incident_id <> ? AND state IN (?, ?))"
            )
            params.extend([incident_id, KeyState.CONFIRMED.value, KeyState.CLOSED.value])
        where = " AND ".join(conditions) or "1 = 1"
        base = self._next_seq(incident_id)
        with self.db.transaction() as tx:
            # Numbering continues after keys already planned, so a second plan adds nothing twice.
            tx.execute(
                "INSERT INTO incident_keys (incident_id, key_id, venue, seq, state, updated_at)"  # noqa: S608 - placeholders only
                " SELECT ?, k.key_id, k.venue,"
                " ROW_NUMBER() OVER (PARTITION BY k.venue ORDER BY k.priority DESC, k.key_id) + ?, ?, ?"
                f" FROM keys k WHERE {where}"
                " AND k.key_id NOT IN (SELECT key_id FROM incident_keys WHERE incident_id = ?)",
                [incident_id, base, *params, incident_id],
            )
            rows = tx.fetchall(
                "SELECT venue, COUNT(*) FROM incident_keys WHERE incident_id = ? GROUP BY venue ORDER BY venue",
                (incident_id,),
            )
            self._event(tx, incident_id, "keyrevoke", "incident.planned", detail=json.dumps(dict(rows)))
        return {venue: int(count) for venue, count in rows}

    def _next_seq(self, incident_id: str) -> int:
        rows = self.db.query("SELECT COALESCE(MAX(seq), 0) FROM incident_keys WHERE incident_id = ?", (incident_id,))
        return int(rows[0][0])

    def load_page(self, incident_id: str, venue: str, after_seq: int, limit: int) -> list[tuple[str, int]]:
        return [
            (str(key_id), int(seq))
            for key_id, seq in self.db.query(
                "SELECT key_id, seq FROM incident_keys WHERE incident_id = ? AND venue = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (incident_id, venue, after_seq, limit),
            )
        ]

    def keys_in_states(self, incident_id: str, venue: str, states: Sequence[KeyState], limit: int) -> list[str]:
        """Up to ``limit`` key ids of a venue that are in one of ``states``, in page order."""
        marks = ", ".join("?" for _ in states)
        rows = self.db.query(
            "SELECT key_id FROM incident_keys WHERE incident_id = ? AND venue = ?"  # noqa: S608 - placeholders only
            f" AND state IN ({marks}) ORDER BY seq LIMIT ?",
            (incident_id, venue, *(s.value for s in states), limit),
        )
        return [str(row[0]) for row in rows]

    def page_in_state(
        self, incident_id: str, venue: str, state: KeyState, after_seq: int, limit: int
    ) -> list[tuple[str, int]]:
        """The next ``limit`` keys of a venue in ``state`` after ``after_seq``, in page order."""
        return [
            (str(key_id), int(seq))
            for key_id, seq in self.db.query(
                "SELECT key_id, seq FROM incident_keys WHERE incident_id = ? AND venue = ? AND state = ?"
                " AND seq > ? ORDER BY seq LIMIT ?",
                (incident_id, venue, state.value, after_seq, limit),
            )
        ]

    def load_keys(self, incident_id: str, key_ids: Sequence[str]) -> list[SealedKey]:
        if not key_ids:
            return []
        marks = ", ".join("?" for _ in key_ids)
        rows = self.db.query(
            "SELECT k.key_id, k.venue, k.account_id, k.account_name, k.method, k.fingerprint, k.api_key_sealed,"  # noqa: S608
            " k.secret_sealed, k.passphrase_sealed, ik.state, ik.baseline_ok, ik.revoked_at, ik.permissions,"
            " k.priority"
            " FROM incident_keys ik JOIN keys k ON k.key_id = ik.key_id"
            f" WHERE ik.incident_id = ? AND ik.key_id IN ({marks})",
            (incident_id, *key_ids),
        )
        by_id = {
            row[0]: SealedKey(
                key_id=row[0],
                venue=row[1],
                account_id=row[2],
                account_name=row[3],
                method=row[4],
                fingerprint=row[5],
                api_key_sealed=row[6],
                secret_sealed=row[7],
                passphrase_sealed=row[8],
                state=KeyState(row[9]),
                baseline_ok=None if row[10] is None else bool(row[10]),
                revoked_at=row[11],
                permissions=row[12],
                priority=int(row[13]),
            )
            for row in rows
        }
        return [by_id[key_id] for key_id in key_ids if key_id in by_id]

    # --- pacing shared by every worker ---

    def reserve_slots(self, venue: str, count: int, interval: float) -> float:
        """Reserve ``count`` request slots ``interval`` s apart for ``venue``; returns the first (epoch s).

        The row is the venue's schedule: every worker of the venue reserves from it, so their slots
        never overlap and the venue's rate holds across them all.
        """
        return self.reserve_pace(venue, count, interval, PaceAsk("", 0.0, 1, 0, 0)).first

    def reserve_pace(self, venue: str, count: int, interval: float, ask: PaceAsk) -> PaceGrant:
        """Reserve slots as :meth:`reserve_slots` does (none for ``count`` 0), and the pacer's part of the
        venue's send window.

        The venue's window (``ask.window`` requests counted at once) is split in parts held by its
        pacers, which never add up to more than the window: a pacer is given what it asks for up to
        its fair part among the pacers that want some, out of what the others do not hold; it gives
        back what it holds beyond that, but never below what it ``ask.using`` (its requests still
        counted at the venue). A pacer not heard of for ``ask.active_seconds`` has left, and its part
        is free. An empty ``ask.pacer`` reserves slots only.
        """
        now = time.time()
        lock = " FOR UPDATE" if self.db.kind == "postgresql" else ""
        with self.db.transaction() as tx:
            # The venue's row exists before it is locked: workers that start together would otherwise both
            # insert it, and one would fail.
            tx.execute(
                "INSERT INTO venue_pace (venue, next_free) VALUES (?, ?) ON CONFLICT (venue) DO NOTHING", (venue, now)
            )
            rows = tx.fetchall(f"SELECT next_free FROM venue_pace WHERE venue = ?{lock}", (venue,))  # noqa: S608
            first = max(now, float(rows[0][0]))
            tx.execute("UPDATE venue_pace SET next_free = ? WHERE venue = ?", (first + count * interval, venue))
            if not ask.pacer:
                return PaceGrant(first, ask.window)
            tx.execute("DELETE FROM venue_pacers WHERE venue = ? AND active_until < ?", (venue, now))
            others = [
                (int(held), int(wanted))
                for name, held, wanted in tx.fetchall(
                    "SELECT pacer, held, wanted FROM venue_pacers WHERE venue = ?", (venue,)
                )
                if name != ask.pacer
            ]
            free = ask.window - sum(held for held, _ in others)
            fair = fair_part(ask.window, ask.wanted, [wanted for _, wanted in others])
            held = max(min(ask.using, ask.window), min(fair, free))
            tx.execute("DELETE FROM venue_pacers WHERE venue = ? AND pacer = ?", (venue, ask.pacer))
            tx.execute(
                "INSERT INTO venue_pacers (venue, pacer, active_until, held, wanted) VALUES (?, ?, ?, ?, ?)",
                (venue, ask.pacer, now + ask.active_seconds, held, ask.wanted),
            )
        # It keeps what its counted requests hold, but sends only within its fair part, so what it
        # holds beyond that drains and goes back at its next ask: a busy pacer never starves another.
        return PaceGrant(first, min(held, fair))

    # --- state changes and events -------------------------------------------------------------

    def apply(self, incident_id: str, transitions: Sequence[Transition], actor: str = "keyrevoke") -> list[str]:
        """Apply the transitions whose key is still in a ``from_state``; returns the keys that moved."""
        moved: list[str] = []
        now = utc_now()
        with self.db.transaction() as tx:
            for change in transitions:
                unknown = set(change.fields) - _UPDATABLE_FIELDS
                if unknown:
                    raise ValueError(f"not a key field: {sorted(unknown)}")
                if not change.from_states:
                    raise ValueError(f"transition of {change.key_id} names no state to move from")
                implied = state_after(change.event)
                stays = implied is None and change.from_states == (change.to_state,)
                if implied != change.to_state.value and not stays:
                    # The report's check derives each key's state from its events: the kind must say it.
                    raise ValueError(f"event {change.event!r} does not name the state {change.to_state.value!r}")
                # Both databases store flags as integers; PostgreSQL refuses a bool there.
                values = [int(v) if isinstance(v, bool) else v for v in change.fields.values()]
                assignments = ", ".join(f"{name} = ?" for name in change.fields)
                sets = "state = ?, updated_at = ?" + (f", {assignments}" if assignments else "")
                marks = ", ".join("?" for _ in change.from_states)
                count = tx.execute(
                    f"UPDATE incident_keys SET {sets} WHERE incident_id = ? AND key_id = ? AND state IN ({marks})",  # noqa: S608
                    (
                        change.to_state.value,
                        now,
                        *values,
                        incident_id,
                        change.key_id,
                        *(s.value for s in change.from_states),
                    ),
                )
                if count:
                    self._event(tx, incident_id, actor, change.event, change.venue, change.key_id, change.detail, now)
                    moved.append(change.key_id)
        return moved

    def append_event(
        self, incident_id: str, actor: str, kind: str, venue: str = "", key_id: str = "", detail: str = ""
    ) -> None:
        with self.db.transaction() as tx:
            self._event(tx, incident_id, actor, kind, venue, key_id, detail)

    def _event(
        self,
        tx: Any,
        incident_id: str,
        actor: str,
        kind: str,
        venue: str = "",
        key_id: str = "",
        detail: str = "",
        at: str | None = None,
    ) -> None:
        """Append one event to the incident's hash chain, inside the caller's transaction."""
        # The incident row is the chain's lock: PostgreSQL locks it until the transaction ends;
        # SQLite's write transaction (BEGIN IMMEDIATE) already serializes all writers.
        lock = " FOR UPDATE" if self.db.kind == "postgresql" else ""
        head = tx.fetchall(
            f"SELECT chain_head, chain_length FROM incidents WHERE incident_id = ?{lock}",  # noqa: S608
            (incident_id,),
        )
        if not head:
            raise InputError(f"no incident {incident_id!r} in the ledger")
        prev_hash, length = head[0][0], int(head[0][1])
        event = {
            "incident_id": incident_id,
            "n": length + 1,
            "at": at or utc_now(),
            "actor": actor,
            "kind": kind,
            "venue": venue,
            "key_id": key_id,
            "detail": detail,
        }
        digest = event_hash(prev_hash, event)
        tx.execute(
            "INSERT INTO events (incident_id, n, at, actor, kind, venue, key_id, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*event.values(), prev_hash, digest),
        )
        tx.execute(
            "UPDATE incidents SET chain_head = ?, chain_length = ? WHERE incident_id = ?",
            (digest, length + 1, incident_id),
        )

    def events(self, incident_id: str, key_id: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT incident_id, n, at, actor, kind, venue, key_id, detail, prev_hash, hash"
            " FROM events WHERE incident_id = ?"
        )
        params: tuple[Any, ...] = (incident_id,)
        if key_id is not None:
            sql += " AND key_id = ?"
            params += (key_id,)
        names = ("incident_id", "n", "at", "actor", "kind", "venue", "key_id", "detail", "prev_hash", "hash")
        rows = self.db.query(sql + " ORDER BY n", params)
        return [dict(zip(names, (*row[:1], int(row[1]), *row[2:]), strict=True)) for row in rows]

    # --- reading progress and evidence ----------------------------------------------------------

    def counts(self, incident_id: str) -> dict[str, dict[str, int]]:
        """Keys per state per venue."""
        result: dict[str, dict[str, int]] = {}
        for venue, state, count in self.db.query(
            "SELECT venue, state, COUNT(*) FROM incident_keys WHERE incident_id = ? GROUP BY venue, state",
            (incident_id,),
        ):
            result.setdefault(venue, {})[state] = int(count)
        return dict(sorted(result.items()))

    def active_counts(self, finished_within_seconds: float) -> dict[tuple[str, str, str], int]:
        """Keys per (incident, venue, state) of every incident that is still running or changed lately.

        An incident counts as running while one of its keys is not in a final state; a finished one
        stays for ``finished_within_seconds`` after its last change, so a dashboard shows it complete
        instead of dropping it the moment its last key ends. For the keys-by-state gauge.
        """
        cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - finished_within_seconds, UTC)
        finals = sorted(s.value for s in FINAL_STATES)
        marks = ", ".join("?" for _ in finals)
        rows = self.db.query(
            "SELECT incident_id, venue, state, COUNT(*) FROM incident_keys WHERE incident_id IN ("  # noqa: S608 - placeholders only
            " SELECT incident_id FROM incident_keys GROUP BY incident_id"
            f" HAVING SUM(CASE WHEN state IN ({marks}) THEN 0 ELSE 1 END) > 0 OR MAX(updated_at) >= ?"
            ") GROUP BY incident_id, venue, state",
            (*finals, cutoff.isoformat(timespec="milliseconds")),
        )
        return {(str(incident), str(venue), str(state)): int(count) for incident, venue, state, count in rows}

    def key_statuses(self, incident_id: str) -> Iterator[KeyStatus]:
        """Every key of the incident with its state and times, in venue and plan order."""
        rows = self.db.query(
            _KEY_STATUS_SELECT + " WHERE ik.incident_id = ? ORDER BY ik.venue, ik.seq",
            (incident_id,),
        )
        return map(_key_status, rows)

    def incident_key_states(self, incident_id: str, key_ids: Iterable[str]) -> dict[str, tuple[str, KeyState]]:
        """Venue and state of each listed key that is in the incident (a key not in it is absent)."""
        wanted = sorted(set(key_ids))
        found: dict[str, tuple[str, KeyState]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.db.query(
                "SELECT key_id, venue, state FROM incident_keys WHERE incident_id = ?"  # noqa: S608
                f" AND key_id IN ({', '.join('?' for _ in chunk)})",
                (incident_id, *chunk),
            )
            found.update({str(key_id): (str(venue), KeyState(state)) for key_id, venue, state in rows})
        return found

    def has_event(self, incident_id: str, kind: str, venue: str) -> bool:
        """Whether the incident's log holds an event of this kind for this venue."""
        rows = self.db.query(
            "SELECT 1 FROM events WHERE incident_id = ? AND kind = ? AND venue = ? LIMIT 1", (incident_id, kind, venue)
        )
        return bool(rows)

    def venue_key_statuses(self, incident_id: str, venue: str, state: KeyState) -> list[KeyStatus]:
        """The keys of one venue in one state: read in SQL, so a few escalated keys cost only themselves."""
        rows = self.db.query(
            _KEY_STATUS_SELECT + " WHERE ik.incident_id = ? AND ik.venue = ? AND ik.state = ? ORDER BY ik.seq",
            (incident_id, venue, state.value),
        )
        return [_key_status(row) for row in rows]

    def owner_emails(self, incident_id: str) -> dict[str, str]:
        """Owner -> email address, for the owners of the incident's keys whose inventory rows give one.

        Kept out of ``KeyStatus`` (and so out of the evidence report): an address is for telling its
        owner, not for everyone who reads the report. An owner whose rows give several: the first key's.
        """
        rows = self.db.query(
            "SELECT k.owner, k.email FROM incident_keys ik JOIN keys k ON k.key_id = ik.key_id"
            " WHERE ik.incident_id = ? AND k.email <> '' ORDER BY k.owner, ik.venue, ik.seq",
            (incident_id,),
        )
        emails: dict[str, str] = {}
        for owner, email in rows:
            emails.setdefault(str(owner), str(email))
        return emails

    @contextmanager
    def snapshot(self, incident_id: str) -> Iterator[IncidentSnapshot]:
        """The incident as of now, read a page at a time inside one read-only transaction."""
        from keyrevoke.ledger.snapshot import IncidentSnapshot

        with self.db.read_snapshot() as tx:
            snapshot = IncidentSnapshot(tx, incident_id)
            snapshot.incident()  # the incident must exist
            yield snapshot

    def close(self) -> None:
        self.db.close()


def open_ledger(url: str, box: SecretBox) -> Ledger:
    """Open (and create if needed) the ledger at ``url``: ``sqlite:///path`` or ``postgresql://...``."""
    return Ledger(Database(url), box)


#: The columns ``_key_status`` reads, in its order.
_KEY_STATUS_SELECT = (
    "SELECT k.key_id, k.venue, k.owner, k.account_id, k.account_name, k.method, k.priority, k.fingerprint,"
    " k.key_hint, ik.state, ik.baseline_ok, ik.permissions, ik.baseline_at, ik.revoked_at, ik.ended_at,"
    " ik.detail, ik.updated_at"
    " FROM incident_keys ik JOIN keys k ON k.key_id = ik.key_id"
)


def _key_status(row: Sequence[Any]) -> KeyStatus:
    return KeyStatus(
        key_id=row[0],
        venue=row[1],
        owner=row[2],
        account_id=row[3],
        account_name=row[4],
        method=row[5],
        priority=int(row[6]),
        fingerprint=row[7],
        key_hint=row[8],
        state=row[9],
        baseline_ok=None if row[10] is None else bool(row[10]),
        permissions=row[11],
        baseline_at=row[12],
        revoked_at=row[13],
        ended_at=row[14],
        detail=row[15],
        updated_at=row[16],
    )


def _legacy_split(row: InventoryRow) -> tuple[str, str]:
    """``(account_id, account_name)`` as an old file's single ``account`` column would have filled them."""
    value = row.account
    return (value, "") if legacy_field(row.venue) == "account_id" else ("", value)
