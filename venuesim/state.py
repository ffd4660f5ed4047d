"""What the simulator knows: the keys of each venue, its master credential, and which keys are deleted.

Shared by every venue module; nothing here knows a venue's wire format. Reprs never show a secret, a
passphrase or a full API key: keys are shown by ``key_id``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

#: keyrevoke's own permission words; each venue module maps them onto its venue's flags.
PERMISSION_WORDS = frozenset({"read", "trade", "withdraw", "transfer"})


@dataclass(frozen=True, repr=False)
class SimKey:
    """One API key the simulator knows (a user's key, or a broker's sub-account key)."""

    key_id: str
    venue: str
    api_key: str
    secret: str
    passphrase: str = ""
    #: one value for a key whose venue knows its account by one field: digits are the user id, anything
    #: else the sub-account name (a shorthand; ``account_id`` and ``account_name`` say it exactly)
    account: str = ""
    permissions: tuple[str, ...] = ("read", "trade")  # keyrevoke words: read, trade, withdraw, transfer
    account_id: str = ""  # the numeric user id (uid) of the sub-account that holds the key
    account_name: str = ""  # the sub-account's name

    def __post_init__(self) -> None:
        if self.account and not (self.account_id or self.account_name):
            # frozen: set the derived fields the way dataclasses do it for frozen instances
            object.__setattr__(self, "account_id" if self.account.isdigit() else "account_name", self.account)
        unknown = set(self.permissions) - PERMISSION_WORDS
        if unknown:
            raise ValueError(f"key {self.key_id!r}: unknown permissions {sorted(unknown)}")
        if not self.api_key or not self.secret:
            raise ValueError(f"key {self.key_id!r}: api_key and secret must not be empty")

    def __repr__(self) -> str:
        return f"SimKey(key_id={self.key_id!r}, venue={self.venue!r})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class SimMaster:
    """The platform's master (broker) credential for one venue: it may delete other keys."""

    venue: str
    api_key: str
    secret: str
    passphrase: str = ""
    account: str = ""

    def __repr__(self) -> str:
        return f"SimMaster(venue={self.venue!r})"

    __str__ = __repr__


@dataclass(repr=False)
class KeyRecord:
    """A key and what happened to it. ``deleted_at`` is wall-clock seconds, None while it exists."""

    key: SimKey
    deleted_at: float | None = None

    def __repr__(self) -> str:
        return f"KeyRecord(key_id={self.key.key_id!r}, deleted={self.deleted_at is not None})"


@dataclass(frozen=True, repr=False)
class Principal:
    """Whoever signed a request: one of the venue's keys, or the venue's master credential."""

    api_key: str
    secret: str
    passphrase: str
    account_id: str  # the signer's user id (uid)
    account_name: str  # the signer's sub-account name; empty for the master
    permissions: frozenset[str]
    record: KeyRecord | None  # None for the master

    @property
    def is_master(self) -> bool:
        return self.record is None

    def __repr__(self) -> str:
        who = "master" if self.record is None else self.record.key.key_id
        return f"Principal({who})"


@dataclass
class VenueState:
    """The keys of one venue. Every lookup takes the current wall-clock time into account."""

    venue: str
    revoke_grace_seconds: float = 0.0
    ip_blocked_key_ids: frozenset[str] = frozenset()
    master: SimMaster | None = None
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 86_400_000)
    _by_api_key: dict[str, KeyRecord] = field(default_factory=dict)
    _by_account_id: dict[str, list[KeyRecord]] = field(default_factory=dict)
    _by_account_name: dict[str, list[KeyRecord]] = field(default_factory=dict)

    def add(self, key: SimKey, *, deleted: bool = False) -> None:
        """Register a key; ``deleted`` keys are gone from the start."""
        if key.api_key in self._by_api_key or (self.master and self.master.api_key == key.api_key):
            raise ValueError(f"venue {self.venue!r}: key {key.key_id!r} reuses another key's api_key")
        # "deleted from the start" keys never authenticate, whatever the grace period
        record = KeyRecord(key, deleted_at=float("-inf") if deleted else None)
        self._by_api_key[key.api_key] = record
        if key.account_id:
            self._by_account_id.setdefault(key.account_id, []).append(record)
        if key.account_name:
            self._by_account_name.setdefault(key.account_name, []).append(record)

    def record(self, api_key: str) -> KeyRecord | None:
        """The key with this api_key, deleted or not; None if the venue never knew it."""
        return self._by_api_key.get(api_key)

    def authenticating(self, api_key: str, now: float | None = None) -> Principal | None:
        """Who ``api_key`` is, if the venue still honours it now (a deleted key during its grace too)."""
        if self.master is not None and api_key == self.master.api_key:
            return Principal(
                api_key=self.master.api_key,
                secret=self.master.secret,
                passphrase=self.master.passphrase,
                account_id=self.master.account,
                account_name="",
                permissions=frozenset(PERMISSION_WORDS),
                record=None,
            )
        record = self._by_api_key.get(api_key)
        if record is None or not self._honoured(record, now):
            return None
        return Principal(
            api_key=record.key.api_key,
            secret=record.key.secret,
            passphrase=record.key.passphrase,
            account_id=record.key.account_id,
            account_name=record.key.account_name,
            permissions=frozenset(record.key.permissions),
            record=record,
        )

    def is_ip_blocked(self, principal: Principal) -> bool:
        """The scenario refuses this key's calls as coming from an address it does not allow."""
        return principal.record is not None and principal.record.key.key_id in self.ip_blocked_key_ids

    def exists(self, api_key: str) -> bool:
        """The venue's key registry still lists the key (deletion is immediate there, whatever the grace)."""
        record = self._by_api_key.get(api_key)
        return record is not None and record.deleted_at is None

    def delete(self, record: KeyRecord, now: float | None = None) -> bool:
        """Delete a key; False if it was already deleted (the first deletion time is kept)."""
        if record.deleted_at is not None:
            return False
        record.deleted_at = time.time() if now is None else now
        return True

    def is_live(self, api_key: str, now: float | None = None) -> bool:
        """The key still works somewhere: it exists, or it was deleted less than the grace period ago."""
        record = self._by_api_key.get(api_key)
        return record is not None and self._honoured(record, now)

    def records(self) -> Iterable[KeyRecord]:
        """Every key the venue ever knew, deleted or not."""
        return self._by_api_key.values()

    def has_account_id(self, account_id: str) -> bool:
        """Some key the venue ever knew, deleted or not, belongs to the sub-account with this user id."""
        return account_id in self._by_account_id

    def has_account_name(self, account_name: str) -> bool:
        """Some key the venue ever knew, deleted or not, belongs to the sub-account of this name."""
        return account_name in self._by_account_name

    def records_of(self, account_name: str) -> Iterable[KeyRecord]:
        """The keys of the sub-account named so, deleted or not, in the order they were added."""
        return self._by_account_name.get(account_name, ())

    def _honoured(self, record: KeyRecord, now: float | None) -> bool:
        if record.deleted_at is None:
            return True
        current = time.time() if now is None else now
        return current < record.deleted_at + self.revoke_grace_seconds
