"""What every venue adapter offers, and the data it works on.

Adapters live only inside activities: they see decrypted credentials, so nothing defined here ever
crosses a workflow boundary, and ``Credentials`` never prints its contents.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from activities.venues.exchanges import ExchangeFactory


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key with its secret and passphrase: decrypted inside one activity, dropped after the call."""

    api_key: str
    secret: str
    passphrase: str = ""

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    __str__ = __repr__

    def as_ccxt_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"apiKey": self.api_key, "secret": self.secret}
        if self.passphrase:
            config["password"] = self.passphrase
        return config


@dataclass(frozen=True, repr=False)
class KeyTarget:
    """One key to probe or revoke, as an adapter needs it."""

    key_id: str
    account: str  # the venue's sub-account id or uid that owns the key; may be empty
    method: str  # how this key is revoked at its venue: "broker", "self", "sub", ...
    fingerprint: str
    credentials: Credentials

    def __repr__(self) -> str:
        return f"KeyTarget(key_id={self.key_id!r}, fingerprint={self.fingerprint!r})"


@dataclass(frozen=True)
class ProbeAnswer:
    """What an authenticated read-only call said about a key.

    ``accepted`` is True when the key authenticated, False when the venue rejected it as invalid.
    Any other failure is raised as a ``VenueError`` instead: it says nothing about the key.
    ``permissions`` uses keyrevoke's own words: read, trade, withdraw, transfer.
    """

    accepted: bool
    permissions: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class RevokeAnswer:
    """The venue accepted a delete, or said the key was already gone (both end the key)."""

    already_gone: bool
    detail: str = ""


class VenueAdapter(ABC):
    """Probe and revoke keys at one venue through ccxt's implicit API methods.

    Subclasses set ``venue`` (the ccxt exchange id) and ``revoke_methods`` (the inventory ``method``
    values they accept; the first is the default for rows that leave it empty), and say in their
    docstring which documentation pages they follow.
    """

    venue: ClassVar[str]
    revoke_methods: ClassVar[tuple[str, ...]]
    #: methods that need the platform's master credentials for this venue
    master_methods: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, exchanges: ExchangeFactory, master: Credentials | None) -> None:
        self.exchanges = exchanges
        self.master = master

    @abstractmethod
    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Make one authenticated read-only call with the key itself."""

    @abstractmethod
    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key at the venue. Deleting a key that is already gone is success."""
