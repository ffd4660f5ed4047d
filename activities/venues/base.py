"""What every venue adapter offers, and the data it works on.

Adapters live only inside activities: they see decrypted credentials, so nothing defined here ever
crosses a workflow boundary, and ``Credentials`` never prints its contents.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import ccxt

from activities.venues.answers import Answer, AnswerLog, VenueCode, seconds, throttled
from activities.venues.classify import classify
from keyrevoke.errors import Misconfigured, RevokeRefused, VenueError, VenueUnavailable
from keyrevoke.venue_fields import ACCOUNT_ID, needed_field, venue_parameter

if TYPE_CHECKING:
    from activities.venues.exchanges import ExchangeFactory

#: one implicit ccxt call, made on the ccxt object it is given
Call = Callable[[Any], Awaitable[Any]]

#: where master credentials are set, for the messages of keys that lack them
MASTERS_HINT = "(add the venue to the master credentials file, KEYREVOKE_MASTER_CREDENTIALS_FILE)"

#: why every key of a venue without a revocation API is escalated
NO_REVOCATION_API = "no revocation API: escalated to the exchange's security team"


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
    account_id: str  # the numeric user id (uid) of the account that holds the key; may be empty
    account_name: str  # the sub-account's name; may be empty
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


#: a probe's answer from the venue's response to it; None if the response is not of the documented shape
Read = Callable[[Any], ProbeAnswer | None]


@dataclass(frozen=True)
class Rejected:
    """The venue rejected the key itself (``VenueAdapter.call_as_key``); ``detail`` says how.

    ``error`` is ccxt's exception, for its class only: its message echoes the request (URL, signature,
    answer body), so it stays out of ``repr`` and out of every message made from a rejection.
    """

    error: Exception = field(repr=False)
    detail: str


@dataclass(frozen=True)
class RevokeAnswer:
    """The venue accepted a delete, or said the key was already gone (both end the key)."""

    already_gone: bool
    detail: str = ""


class VenueAdapter(ABC):
    """Probe and revoke keys at one venue through ccxt's implicit API methods.

    Subclasses set ``venue`` (the ccxt exchange id), ``revoke_methods`` (the inventory ``method``
    values they accept; the first is the default for rows that leave it empty) and ``answers`` (their
    module's answer log), and say in their docstring which documentation pages they follow. The venue's
    own codes (``gone_codes``, ``rejected_codes``, ``master_refused_codes``) and its rate-limit hints
    (``rate_window``, ``_retry_after``) drive the shared calls and the shared ``_classify``.
    """

    venue: ClassVar[str]
    revoke_methods: ClassVar[tuple[str, ...]]
    #: methods that need the platform's master credentials for this venue
    master_methods: ClassVar[frozenset[str]] = frozenset()
    #: the raw answers behind this venue's ccxt calls
    answers: ClassVar[AnswerLog]
    #: codes that reject the key itself although ccxt does not call them ``AuthenticationError``
    rejected_codes: ClassVar[frozenset[VenueCode]] = frozenset()
    #: codes by which a master delete says the key is already gone, with the detail to report
    gone_codes: ClassVar[Mapping[VenueCode, str]] = {}
    #: the ccxt class a "gone" code must come with
    gone_class: ClassVar[type[Exception]] = ccxt.BaseError
    #: codes by which the venue refuses the master key itself (besides ``AuthenticationError``)
    master_refused_codes: ClassVar[frozenset[VenueCode]] = frozenset()
    #: how a refused master is named in ``RevokeRefused``
    master_refused_as: ClassVar[str] = "master refused"
    #: the wait before retrying a rate-limited call when the venue sends no hint of its own
    rate_window: ClassVar[float | None] = None

    def __init__(self, exchanges: ExchangeFactory, master: Credentials | None) -> None:
        self.exchanges = exchanges
        self.master = master

    @abstractmethod
    async def probe(self, target: KeyTarget) -> ProbeAnswer:
        """Make one authenticated read-only call with the key itself."""

    @abstractmethod
    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """Delete the key at the venue. Deleting a key that is already gone is success."""

    async def probe_as_key(self, target: KeyTarget, call: Call, answer: str, read: Read) -> ProbeAnswer:
        """Make the read-only ``call`` with the key itself and answer what it said about the key.

        A key the venue rejected is ``accepted=False``; otherwise ``read`` makes the answer of the
        response, and a response it cannot read (None) is ``VenueUnavailable``, naming the ``answer``.
        """
        response = await self.call_as_key(target.credentials, call)
        if isinstance(response, Rejected):
            return ProbeAnswer(accepted=False, detail=response.detail)
        probed = read(response)
        if probed is None:
            raise VenueUnavailable(self.venue, f"unexpected {answer} answer")
        return probed

    def require_passphrase(self, target: KeyTarget, signer: str) -> None:
        """Refuse a key without a passphrase at a venue (``signer``, as it writes its name) that signs with one."""
        if not target.credentials.passphrase:
            raise RevokeRefused(self.venue, f"the key has no passphrase: {signer} signs every private call with one")

    def require_master_passphrase(self) -> None:
        """Refuse a master delete at a venue that signs with a passphrase when the master credentials have none."""
        if self.master is not None and not self.master.passphrase:
            raise Misconfigured(self.venue, f"the master credentials have no passphrase {MASTERS_HINT}")

    def sub_account(self, target: KeyTarget) -> str:
        """The account value this venue's delete sends for ``target``: its id or its name (venue_fields).

        An inventory row without it (possible only in a ledger migrated from before the split) is our
        own set-up lacking something: ``Misconfigured``, and nothing is sent.
        """
        method = target.method or self.revoke_methods[0]
        needed = needed_field(self.venue, method)
        if needed is None:
            return ""
        value = target.account_id if needed == ACCOUNT_ID else target.account_name
        if not value or (needed == ACCOUNT_ID and not value.isdigit()):
            wanted = "numeric " if needed == ACCOUNT_ID else ""
            raise Misconfigured(
                self.venue,
                f"the key's inventory row has no {wanted}{needed} (sent as {venue_parameter(self.venue, method)}):"
                " add it and import the row again",
            )
        return value

    def revoke_method(self, target: KeyTarget) -> str:
        """The key's revoke method, refused unless this venue supports it (with master credentials if it needs them)."""
        method = target.method or self.revoke_methods[0]
        self.check_setup(method)
        return method

    def check_setup(self, method: str) -> None:
        """Raise ``Misconfigured`` if keyrevoke's own set-up lacks what a key revoked by ``method`` needs.

        Nothing is sent to the venue: a method the venue does not support (inventory ``method``), a venue
        without URL (real exchanges not allowed), a method that needs the platform's master credentials
        when there are none for this venue. ``method`` empty means the venue's default.
        """
        method = method or self.revoke_methods[0]
        if method not in self.revoke_methods:
            supported = ", ".join(self.revoke_methods)
            raise Misconfigured(self.venue, f"no revoke method {method!r} (supported: {supported}; inventory `method`)")
        refused = self.exchanges.unreachable(self.venue)
        if refused is not None:
            raise refused
        if method in self.master_methods and self.master is None:
            raise Misconfigured(self.venue, f"no master credentials configured for method {method!r} {MASTERS_HINT}")

    async def call_as_key(self, credentials: Credentials, call: Call) -> Any:
        """Make ``call`` on an object lent by the factory and signed with ``credentials``, then release it.

        Returns the call's answer, or ``Rejected`` when the venue rejected the key (``_rejects``);
        any other failure is raised as the venue error ``_classify`` makes of it. The object is
        released, and the key cleared from it, however the call ends.
        """
        exchange = self.answers.watch(self.exchanges.create(self.venue, credentials))
        reusable = True
        try:
            return await call(exchange)
        except ccxt.BaseError as exc:
            if self._rejects(exc):
                return Rejected(exc, self.answers.rejected(exc))
            raise self._classify(exc, exchange) from None
        except BaseException:
            # cancelled, or failed outside ccxt: the object may be stopped half-way through a request
            reusable = False
            raise
        finally:
            await self.exchanges.release(exchange, reusable=reusable)

    async def call_as_master(self, target: KeyTarget, call: Call, deleted: str) -> RevokeAnswer:
        """Make the delete ``call`` with the shared master object; ``deleted`` is the detail of success.

        A "gone" answer (``_already_gone``) ends the key too; a refused master is ``RevokeRefused``;
        anything else is classified.
        """
        if self.master is None:  # revoke_method has refused master methods without one already
            raise Misconfigured(self.venue, f"no master credentials configured {MASTERS_HINT}")
        exchange = self.answers.watch(self.exchanges.master(self.venue, self.master))
        try:
            await call(exchange)
        except ccxt.BaseError as exc:
            gone = await self._already_gone(exc, exchange, target)
            if gone is not None:
                return gone
            if self._master_refuses(exc):
                raise RevokeRefused(self.venue, f"{self.master_refused_as}: {self.answers.rejected(exc)}") from None
            raise self._classify(exc, exchange) from None
        return RevokeAnswer(already_gone=False, detail=deleted)

    def _rejects(self, error: Exception) -> bool:
        """Whether a probe's failure is the venue rejecting the key itself."""
        return isinstance(error, ccxt.AuthenticationError) or self.answers.code() in self.rejected_codes

    async def _already_gone(self, error: Exception, exchange: Any, target: KeyTarget) -> RevokeAnswer | None:
        """The answer for a master delete that says the key no longer exists; None for any other failure."""
        code = self.answers.code()
        if code is None or code not in self.gone_codes or not isinstance(error, self.gone_class):
            return None
        return RevokeAnswer(already_gone=True, detail=self.gone_codes[code])

    def _master_refuses(self, error: Exception) -> bool:
        """Whether a master delete's failure is the venue refusing the master key itself."""
        codes = self.rejected_codes | self.master_refused_codes
        return isinstance(error, ccxt.AuthenticationError) or self.answers.code() in codes

    def _classify(self, error: Exception, exchange: Any) -> VenueError:
        """The venue error for a failed call: the HTTP status first (``throttled``), then ccxt's class."""
        answer = self.answers.last()
        if answer is not None:
            limited = throttled(self.venue, answer, self._retry_after(answer), self._ban_retry_after(answer))
            if limited is not None:
                return limited
        return self._by_class(error, exchange)

    def _retry_after(self, answer: Answer) -> float | None:
        """How long a rate-limited caller waits: ``Retry-After``, else ``rate_window``."""
        hint = seconds(answer.header("Retry-After"))
        return (hint or self.rate_window) if self.rate_window is not None else hint

    def _ban_retry_after(self, answer: Answer) -> float | None:
        """How long a banned caller waits: ``Retry-After``."""
        return seconds(answer.header("Retry-After"))

    def _by_class(self, error: Exception, exchange: Any) -> VenueError:
        """ccxt's exception class decides (``classify``), with the answer's headers for Retry-After."""
        answer = self.answers.last()
        headers = answer.headers if answer is not None else exchange.last_response_headers
        return classify(self.venue, error, headers)


def key_works(endpoint: str, permissions: tuple[str, ...], **facts: object) -> ProbeAnswer:
    """An accepted probe: the rights found and what else the venue said of the key, in one detail line.

    ``facts`` go into the detail as ``name=value``; an IP binding as ``ip_binding(...)``.
    """
    notes = "".join(f"; {name}={value}" for name, value in facts.items())
    detail = f"{endpoint}: {','.join(permissions) or 'none'}{notes}"
    return ProbeAnswer(accepted=True, permissions=permissions, detail=detail)


def ip_binding(bound: object) -> str:
    """How a probe's detail shows whether the key is bound to IP addresses."""
    return "bound" if bound else "any"


def member(response: Any, name: str) -> dict[str, Any] | None:
    """The JSON object under ``name`` of a response object; None if either is not an object."""
    value = response.get(name) if isinstance(response, dict) else None
    return value if isinstance(value, dict) else None


class NoRevocationApi(VenueAdapter):
    """A venue with no API call that deletes a key: ``revoke`` always refuses, so that the batch escalates the key.

    The escalation packet goes to the exchange, and the commander confirms when the exchange has acted.
    """

    revoke_methods = ("manual",)
    master_methods = frozenset()

    async def revoke(self, target: KeyTarget) -> RevokeAnswer:
        """The venue cannot delete a key through its API: always refused, so that the key is escalated."""
        self.revoke_method(target)
        raise RevokeRefused(self.venue, NO_REVOCATION_API)
