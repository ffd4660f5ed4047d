"""Frozen data that crosses workflow boundaries: inputs, results, queries.

Nothing here holds a secret or a full API key: keys travel by ``key_id`` (the platform's own
reference) and are shown by fingerprint. This module imports only the standard library so that
workflow code can import it inside the sandbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SignedAction:
    """A commander's action as an operator signed it: the message (text) and its SSHSIG signature.

    The message names the incident, the action, the venue, the reason, a digest of the keys, a time
    and a nonce (see ``keyrevoke.operators``); the signature is ``ssh-keygen -Y sign -n keyrevoke``'s
    armored output. Neither is a secret.
    """

    message: str
    signature: str


@dataclass(frozen=True)
class VerifyActionRequest:
    """What the verifying activity checks: the signed action against the request it comes with.

    The keys an action lists (a confirm's keys, a start's owners) travel as their count and digest.
    """

    incident_id: str
    action: str
    venue: str
    reason: str
    keys: int
    keys_sha256: str
    signed: SignedAction | None
    # When Temporal took the action (ISO 8601): a signature is as fresh as it was then, however long
    # the check waited for a worker.
    received_at: str = ""

    @classmethod
    def of(
        cls,
        incident_id: str,
        action: str,
        signed: SignedAction | None,
        venue: str = "",
        reason: str = "",
        key_ids: Iterable[str] = (),
        received_at: str = "",
    ) -> VerifyActionRequest:
        distinct = set(key_ids)
        return cls(incident_id, action, venue, reason, len(distinct), keys_digest(distinct), signed, received_at)


@dataclass(frozen=True)
class Operator:
    """An operator whose signature verified: the registered name (shown) and key fingerprint (decides)."""

    name: str
    fingerprint: str

    @property
    def actor(self) -> str:
        """How the event log names the operator: the name, with the key that decided."""
        return f"{self.name} ({self.fingerprint})"

    def is_same_person(self, other: Operator) -> bool:
        """The same key, or the same registered name however it is written ('Alice', 'alice ')."""
        return self.fingerprint == other.fingerprint or same_person(self.name, other.name)


#: The reason a signed start gives when it asks for a second person's approval.
START_WITH_APPROVAL = "approval required"


def same_person(a: str, b: str) -> bool:
    """Names compared as people write them: 'Alice', 'alice' and 'alice ' are one person."""
    return a.strip().casefold() == b.strip().casefold()


def keys_digest(key_ids: Iterable[str]) -> str:
    """Listed keys (or owners) as a signed message names them: SHA-256 over the sorted distinct ids."""
    return hashlib.sha256("\n".join(sorted(set(key_ids))).encode()).hexdigest()


def signature_digest(signed: SignedAction) -> str:
    """Names one signed action: the same message and signature sent again have the same digest."""
    return hashlib.sha256((signed.message + "\0" + signed.signature).encode()).hexdigest()


@dataclass(frozen=True)
class ConfirmationCheckRequest:
    """Are these keys (none: every one) escalated keys of the venue, waiting for the exchange?"""

    incident_id: str
    venue: str
    key_ids: tuple[str, ...]


@dataclass(frozen=True)
class IncidentInput:
    """Start of an incident workflow. The scope itself was recorded in the ledger by the commander."""

    incident_id: str
    task_queue_prefix: str
    batch_size: int = 25
    batches_in_flight: int = 4
    verify_interval_seconds: float = 2.0
    verify_deadline_seconds: float = 120.0
    started_by: str = ""
    require_approval: bool = False  # two-person start: plan, then wait for another person's approval
    escalation_wait_seconds: float = 86_400.0
    escalation_probe_interval_seconds: float = 300.0
    first_batch_size: int = 8  # each venue's first batch, alone until probed; >= batch_size: no small first
    start_signed: SignedAction | None = None  # the starter's signed start (None in inputs recorded before it)
    # What the signed start names besides the incident: its venues (joined by commas) and owners.
    scope_venues: str = ""
    scope_owners: int = 0
    scope_owners_sha256: str = ""
    batch_attempts: int = 12  # of one batch activity, before its keys are tried one by one alone


@dataclass(frozen=True)
class VenuePlan:
    venue: str
    keys: int


@dataclass(frozen=True)
class IncidentPlan:
    """What planning put in scope: keys per venue."""

    incident_id: str
    venues: tuple[VenuePlan, ...]

    @property
    def total_keys(self) -> int:
        return sum(v.keys for v in self.venues)


@dataclass(frozen=True)
class VenueInput:
    """Input of a venue workflow; ``after_seq`` and ``done`` carry the state across continue-as-new."""

    incident_id: str
    venue: str
    task_queue: str
    control_queue: str
    batch_size: int
    batches_in_flight: int
    verify_interval_seconds: float
    verify_deadline_seconds: float
    after_seq: int = 0
    batches_done: int = 0
    paused: bool = False
    stop_reason: str = ""
    escalation_wait_seconds: float = 86_400.0
    escalation_probe_interval_seconds: float = 300.0
    first_batch_size: int = 0  # 0 (as in inputs recorded before it existed): no small first batch
    batch_attempts: int = 0  # 0 (as in inputs recorded before it existed): a batch is retried without end


@dataclass(frozen=True)
class PageRequest:
    incident_id: str
    venue: str
    after_seq: int
    limit: int


@dataclass(frozen=True)
class KeyRef:
    """One key of an incident, as the workflows see it: never a secret."""

    key_id: str
    seq: int


@dataclass(frozen=True)
class Page:
    keys: tuple[KeyRef, ...]

    @property
    def last_seq(self) -> int:
        return self.keys[-1].seq if self.keys else 0


@dataclass(frozen=True)
class BatchRequest:
    incident_id: str
    venue: str
    key_ids: tuple[str, ...]


@dataclass(frozen=True)
class VerifyRequest:
    incident_id: str
    venue: str
    key_ids: tuple[str, ...]
    final: bool = False


@dataclass(frozen=True)
class CompensateRequest:
    """Hand back up to ``limit`` keys of a venue that were not revoked (incident cancelled or narrowed)."""

    incident_id: str
    venue: str
    reason: str
    limit: int


@dataclass(frozen=True)
class GiveUpRequest:
    """Keys whose step kept failing, alone too: they end failed (unconfirmed if revoked) with ``error``.

    ``error`` is the last failure's type and message, as the activity classified it: never a secret.
    """

    incident_id: str
    venue: str
    key_ids: tuple[str, ...]
    step: str
    error: str


@dataclass(frozen=True)
class StatePageRequest:
    """The next page of a venue's keys that are in ``state``, after a cursor."""

    incident_id: str
    venue: str
    state: str
    after_seq: int
    limit: int


@dataclass(frozen=True)
class ExchangeConfirmation:
    """The commander's word that the exchange revoked keys in bulk: these keys (or all escalated ones)."""

    actor: str
    key_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AcceptConfirmationRequest:
    incident_id: str
    venue: str
    confirmation: ExchangeConfirmation
    key_ids: tuple[str, ...]


@dataclass(frozen=True)
class ConfirmRequest:
    """``keyrevoke incident confirm``: the exchange says it revoked the venue's escalated keys."""

    actor: str
    venue: str
    key_ids: tuple[str, ...] = ()
    signed: SignedAction | None = None


@dataclass(frozen=True)
class OwnerNoticeRequest:
    """Tell every owner with keys at ``venue`` where all their keys in the incident stand."""

    incident_id: str
    venue: str


@dataclass(frozen=True)
class BatchResult:
    """Per-key outcomes of one batch, as data: which keys go on to the next step."""

    proceed: tuple[str, ...] = ()
    ended: int = 0


@dataclass(frozen=True)
class VenueSummary:
    venue: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IncidentSummary:
    incident_id: str
    venues: tuple[VenueSummary, ...]
    # The event chain as it stood when the incident ended: Temporal's copy, outside the ledger, that
    # `verify-report --temporal` compares a report's chain against.
    chain_length: int = 0
    chain_head: str = ""

    def total(self, state: str) -> int:
        return sum(v.counts.get(state, 0) for v in self.venues)

    @property
    def total_keys(self) -> int:
        return sum(sum(v.counts.values()) for v in self.venues)


@dataclass(frozen=True)
class VenueProgress:
    """Answer of the venue workflow's ``progress`` query: small, whatever the number of keys."""

    venue: str
    batches_done: int
    batches_in_flight: int
    last_seq_loaded: int
    exhausted: bool
    paused: bool = False
    stop_reason: str = ""
    awaiting_exchange: int = 0  # escalated keys waiting for the exchange's (and the commander's) word
    exchange_confirmed_by: str = ""
    # running | paused | cancelling (stopped: cancel or narrow) | awaiting_exchange
    phase: str = "running"
    last_change_at: str = ""  # ISO time (workflow clock) a batch step last moved keys; empty: none yet
    failing: str = ""  # "<step>: <ErrorType>: <message>": attempts ran out; cleared when that step works again


@dataclass(frozen=True)
class ControlRequest:
    """A commander's action on a running incident. ``venue`` empty means the whole incident."""

    actor: str
    venue: str = ""
    reason: str = ""
    signed: SignedAction | None = None


@dataclass(frozen=True)
class IncidentEvent:
    """One line of the incident's audit log, written through the control queue."""

    incident_id: str
    actor: str
    kind: str
    venue: str = ""
    detail: str = ""


@dataclass(frozen=True)
class IncidentState:
    """Answer of the incident workflow's ``state`` query."""

    incident_id: str
    phase: str  # planning | awaiting_approval | running | cancelling | summarizing | completed
    plan: IncidentPlan | None
    started_by: str
    approved_by: str
    paused_venues: tuple[str, ...]
    paused_all: bool
    stopped_venues: tuple[str, ...]
    cancel_reason: str
    venues_done: tuple[str, ...]


def control_queue(prefix: str) -> str:
    """The task queue of workflows and ledger activities."""
    return f"{prefix}-control"


def venue_queue(prefix: str, venue: str) -> str:
    """The task queue of one venue's batch activities: its rate is that venue's rate."""
    return f"{prefix}-venue-{venue}"
