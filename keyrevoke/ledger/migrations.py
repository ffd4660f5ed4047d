"""Bringing a ledger written by an older keyrevoke up to the current schema, in place.

``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it was, so columns added since are added
here, and filled from what the old ledger held. Every step is idempotent: it looks at the table
first and does nothing when the step is already done, so opening a ledger twice (or from two
workers at once, each in its own transaction) changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from keyrevoke.venue_fields import LEGACY_ACCOUNT_FIELD


class _Tx(Protocol):
    """The ledger's transaction (``?`` placeholders on both databases)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


#: Columns of ``keys`` added after the first release, with their SQL definitions.
_ADDED_KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("account_id", "TEXT NOT NULL DEFAULT ''"),
    ("account_name", "TEXT NOT NULL DEFAULT ''"),
    ("email", "TEXT NOT NULL DEFAULT ''"),
)


def _columns(kind: str, tx: _Tx, table: str) -> set[str]:
    if kind == "sqlite":
        return {str(row[1]) for row in tx.fetchall(f"PRAGMA table_info({table})")}
    # current_schema(): the one the connection's search_path puts tables in
    rows = tx.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return {str(row[0]) for row in rows}


def migrate(kind: str, tx: _Tx) -> list[str]:
    """Apply the steps this ledger lacks, inside the caller's transaction; returns the columns added.

    Split account (``account`` -> ``account_id`` / ``account_name``): an old ledger has one ``account``
    value per key, which meant the numeric user id at some venues and the sub-account name at
    others; it fills the field that key's venue uses (keyrevoke.venue_fields). ``account`` itself is
    kept: older workers reading the same ledger during a rolling upgrade still find it.
    """
    present = _columns(kind, tx, "keys")
    added = [name for name, _ in _ADDED_KEY_COLUMNS if name not in present]
    # PostgreSQL: IF NOT EXISTS, for two workers upgrading the same ledger at once (SQLite's writers
    # are one at a time: the second finds the columns there)
    guard = "" if kind == "sqlite" else "IF NOT EXISTS "
    for name, definition in _ADDED_KEY_COLUMNS:
        if name in added:
            tx.execute(f"ALTER TABLE keys ADD COLUMN {guard}{name} {definition}")
    if "account_id" in added or "account_name" in added:
        for field in ("account_id", "account_name"):
            venues = sorted(venue for venue, used in LEGACY_ACCOUNT_FIELD.items() if used == field)
            marks = ", ".join("?" for _ in venues)
            tx.execute(
                f"UPDATE keys SET {field} = account WHERE {field} = '' AND account <> '' AND venue IN ({marks})",  # noqa: S608
                tuple(venues),
            )
        # a venue unknown to this version: keep its value as a name, as the inventory reads it
        known = sorted(LEGACY_ACCOUNT_FIELD)
        marks = ", ".join("?" for _ in known)
        tx.execute(
            f"UPDATE keys SET account_name = account WHERE account_name = '' AND account_id = ''"  # noqa: S608
            f" AND account <> '' AND venue NOT IN ({marks})",
            tuple(known),
        )
    return added
