"""Batch activities: prepare (freeze + baseline probe), revoke and verify a bounded set of keys.

They run on a venue's own task queue. Each key's outcome is data: recorded in the ledger (state,
evidence, event) and returned so the workflow knows which keys go on. A failure of the batch itself
(the venue unavailable, rate limiting, a ban) is raised as an ``ApplicationError`` so that Temporal's
retry policy acts; the retried attempt skips what the ledger already records as done.

Secrets are opened here, one key at a time, right before the call that needs them, and dropped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger_writer import GroupCommitWriter
from activities.pacing import CircuitBreaker, VenuePacer
from activities.platform_hook import OWNER_MESSAGES, HookError, HookRequest, PlatformHook
from activities.retries import call_venue
from activities.venues.base import Credentials, KeyTarget, VenueAdapter
from keyrevoke.errors import (
    KeyRejected,
    Misconfigured,
    RateLimited,
    RevokeRefused,
    SecretStoreError,
    UnsupportedVenue,
    VenueBanned,
    VenueError,
)
from keyrevoke.ledger import Ledger, SealedKey
from keyrevoke.ledger.store import Transition, utc_now
from keyrevoke.models import (
    AcceptConfirmationRequest,
    BatchRequest,
    BatchResult,
    CompensateRequest,
    VerifyRequest,
)
from keyrevoke.observability.calls import venue_call
from keyrevoke.repeating import repeating
from keyrevoke.states import KeyState
from keyrevoke.telemetry import NoTelemetry, Telemetry
from workflows import options

T = TypeVar("T")

_NOT_REVOKED = (KeyState.PENDING, KeyState.FROZEN, KeyState.REVOKING)

HEARTBEAT_EVERY = 2.0  # a fifth of the batch heartbeat timeout (workflows/options.py), for a lagging loop


@dataclass(frozen=True)
class BatchLimits:
    """How hard one worker works a venue: set from the settings by the worker."""

    requests_per_second: float
    keys_in_flight: int
    request_attempts: int


def batch_failure(error: VenueError) -> ApplicationError:
    """The ``ApplicationError`` that fails a batch attempt, telling the retry policy when to retry."""
    delay = None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        delay = timedelta(seconds=error.retry_after)
    return ApplicationError(
        str(error), type=type(error).__name__, non_retryable=not error.retryable, next_retry_delay=delay
    )


def unexpected_failure(venue: str, error: BaseException) -> ApplicationError:
    """The ``ApplicationError`` for an error no adapter classified (a bug, or inventory data a library refuses).

    Only its type is told: its message may echo the request (a header, a URL with a passphrase in it).
    The batch is retried; if it keeps failing, its keys are tried alone and the one at fault ends failed.
    """
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    name = type(error).__name__
    return ApplicationError(f"{venue}: unexpected {name} (its message is withheld: it may echo the request)", type=name)


class BatchActivities:
    """Probe, revoke and verify keys at the venues; the worker injects ledger, adapters and hook."""

    def __init__(
        self,
        ledger: Ledger,
        adapters: dict[str, VenueAdapter],
        hook: PlatformHook,
        limits: BatchLimits,
        telemetry: Telemetry | None = None,
        writer: GroupCommitWriter | None = None,
    ) -> None:
        self.ledger = ledger
        # Each key's steps are written through it: one transaction for the transitions that queue together.
        self.writer = writer or GroupCommitWriter(ledger)
        self.adapters = adapters
        self.hook = hook
        self.limits = limits
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self._limiters = {venue: VenuePacer(ledger, venue, limits.requests_per_second) for venue in adapters}
        self._breakers = {venue: CircuitBreaker(venue) for venue in adapters}

    # --- activities ---------------------------------------------------------------------------

    @activity.defn(name=options.PREPARE_BATCH)
    async def prepare_batch(self, request: BatchRequest) -> BatchResult:
        """Freeze each key at the platform, then probe it once to record a baseline."""

        async def prepare(key: SealedKey) -> None:
            if key.state in (KeyState.PENDING, KeyState.FROZEN):
                try:
                    self._adapter(key.venue).check_setup(key.method)
                except Misconfigured as error:
                    # Our own set-up cannot revoke it: nothing is asked of the platform or the venue.
                    await self._misconfigured(request.incident_id, key, error)
                    return
            if key.state is KeyState.PENDING:
                await self._tell_platform(request.incident_id, key, "freeze")
                await self._apply(
                    request.incident_id,
                    Transition(key.key_id, key.venue, KeyState.FROZEN, (KeyState.PENDING,), "key.frozen"),
                )
            if key.state in (KeyState.PENDING, KeyState.FROZEN):
                await self._baseline(request.incident_id, key)

        keys = await self._run(request.incident_id, request.venue, request.key_ids, prepare)
        return await self._result(request.incident_id, keys, KeyState.REVOKING)

    @activity.defn(name=options.REVOKE_BATCH)
    async def revoke_batch(self, request: BatchRequest) -> BatchResult:
        """Delete each key at its venue; a key that is already gone counts as deleted."""

        async def revoke(key: SealedKey) -> None:
            if key.state is KeyState.REVOKING:
                await self._revoke(request.incident_id, key)

        keys = await self._run(request.incident_id, request.venue, request.key_ids, revoke, riskiest_first=True)
        return await self._result(request.incident_id, keys, KeyState.REVOKED)

    @activity.defn(name=options.VERIFY_BATCH)
    async def verify_batch(self, request: VerifyRequest) -> BatchResult:
        """Probe each revoked key: rejected means confirmed (if its baseline worked); on the final
        pass a key that still authenticates is reported live."""

        async def verify(key: SealedKey) -> None:
            if key.state is KeyState.REVOKED:
                await self._verify(request.incident_id, key, request.final)

        keys = await self._run(request.incident_id, request.venue, request.key_ids, verify)
        return await self._result(request.incident_id, keys, KeyState.REVOKED)

    @activity.defn(name=options.COMPENSATE_BATCH)
    async def compensate_batch(self, request: CompensateRequest) -> BatchResult:
        """Hand up to ``limit`` keys that were not revoked back to the platform; ``ended`` counts them.

        A frozen key is unfrozen through the platform hook and its owner told; a key never touched
        (still pending) is released without a call. Revoked keys are not touched: they cannot come
        back, and their owners are told to reissue when their verification ends.
        """
        key_ids = await asyncio.to_thread(
            self.ledger.keys_in_states, request.incident_id, request.venue, _NOT_REVOKED, request.limit
        )
        keys = await asyncio.to_thread(self.ledger.load_keys, request.incident_id, key_ids)
        ended = 0
        for key in keys:
            if key.state is not KeyState.PENDING:
                await self._tell_platform(request.incident_id, key, "unfreeze", KeyState.UNFROZEN)
            moved = await self._apply(
                request.incident_id,
                Transition(
                    key.key_id,
                    key.venue,
                    KeyState.UNFROZEN,
                    _NOT_REVOKED,
                    "key.unfrozen",
                    request.reason,
                    {"ended_at": utc_now(), "detail": f"not revoked: {request.reason}"},
                ),
            )
            ended += int(moved)
            activity.heartbeat(ended)
        return BatchResult(ended=ended)

    @activity.defn(name=options.PROBE_ESCALATED_BATCH)
    async def probe_escalated_batch(self, request: BatchRequest) -> BatchResult:
        """Probe escalated keys: one the venue now rejects was revoked on the exchange's side."""

        async def probe(key: SealedKey) -> None:
            if key.state is KeyState.ESCALATED:
                await self._verify(request.incident_id, key, final=False, from_state=KeyState.ESCALATED)

        keys = await self._run(request.incident_id, request.venue, request.key_ids, probe)
        return await self._result(request.incident_id, keys, KeyState.ESCALATED)

    @activity.defn(name=options.ACCEPT_EXCHANGE_CONFIRMATION)
    async def accept_exchange_confirmation(self, request: AcceptConfirmationRequest) -> BatchResult:
        """The commander says the exchange revoked these keys: they go on to verification."""
        wanted = set(request.confirmation.key_ids)
        detail = f"the exchange revoked it; confirmed by {request.confirmation.actor}"
        changes = [
            Transition(
                key_id,
                request.venue,
                KeyState.REVOKED,
                (KeyState.ESCALATED,),
                "key.revoked.by_exchange",
                detail,
                {"revoked_at": utc_now(), "detail": detail},
            )
            for key_id in request.key_ids
            if not wanted or key_id in wanted
        ]
        moved = await asyncio.to_thread(self.ledger.apply, request.incident_id, changes, request.confirmation.actor)
        for _ in moved:
            self.telemetry.key_transition(request.venue, KeyState.REVOKED.value)
        return BatchResult(proceed=tuple(moved), ended=len(moved))

    # --- one key's steps ----------------------------------------------------------------------

    async def _baseline(self, incident_id: str, key: SealedKey) -> None:
        adapter = self._adapter(key.venue)
        try:
            answer = await self._call(key, "probe", lambda: adapter.probe(self._target(key)))
        except SecretStoreError as error:
            await self._end(
                incident_id,
                key,
                KeyState.FAILED,
                (KeyState.PENDING, KeyState.FROZEN),
                "key.failed",
                str(error),
            )
            return
        except Misconfigured as error:
            await self._misconfigured(incident_id, key, error)
            return
        except (RevokeRefused, UnsupportedVenue, KeyRejected) as error:
            # The probe could not run as the key: the baseline failed, the revoke still goes ahead.
            ok, permissions, detail = False, "", f"baseline probe failed: {error}"
        else:
            ok, permissions = answer.accepted, ",".join(sorted(answer.permissions))
            detail = f"baseline probe {'accepted' if ok else 'rejected'}: {answer.detail}".rstrip(": ")
        await self._apply(
            incident_id,
            Transition(
                key.key_id,
                key.venue,
                KeyState.REVOKING,
                (KeyState.PENDING, KeyState.FROZEN),
                "key.baseline",
                detail,
                {
                    "baseline_ok": int(ok),
                    "permissions": permissions,
                    "baseline_at": utc_now(),
                    "detail": detail,
                },
            ),
        )

    async def _revoke(self, incident_id: str, key: SealedKey) -> None:
        adapter = self._adapter(key.venue)
        started = time.monotonic()
        try:
            answer = await self._call(key, "revoke", lambda: adapter.revoke(self._target(key)))
        except SecretStoreError as error:
            await self._end(incident_id, key, KeyState.FAILED, (KeyState.REVOKING,), "key.failed", str(error))
            return
        except Misconfigured as error:
            await self._misconfigured(incident_id, key, error)
            return
        except (RevokeRefused, UnsupportedVenue, KeyRejected) as error:
            await self._end(
                incident_id,
                key,
                KeyState.ESCALATED,
                (KeyState.REVOKING,),
                "key.escalated",
                f"venue refused the revoke: {error}",
            )
            return
        self.telemetry.revoke_latency(key.venue, time.monotonic() - started)
        detail = "already gone at the venue" if answer.already_gone else f"deleted: {answer.detail}".rstrip(": ")
        await self._apply(
            incident_id,
            Transition(
                key.key_id,
                key.venue,
                KeyState.REVOKED,
                (KeyState.REVOKING,),
                "key.revoked",
                detail,
                {"revoked_at": utc_now(), "detail": detail},
            ),
        )

    async def _verify(
        self, incident_id: str, key: SealedKey, final: bool, from_state: KeyState = KeyState.REVOKED
    ) -> None:
        """Probe a key thought revoked: rejected confirms it (if its baseline worked)."""
        adapter = self._adapter(key.venue)
        try:
            answer = await self._call(key, "probe", lambda: adapter.probe(self._target(key)))
        except (RevokeRefused, UnsupportedVenue, SecretStoreError, Misconfigured) as error:
            if from_state is KeyState.ESCALATED:
                return  # still escalated: the commander's confirmation and later probes decide
            await self._end(
                incident_id,
                key,
                KeyState.UNCONFIRMED,
                (from_state,),
                "key.unconfirmed",
                f"verify probe failed: {error}",
            )
            return
        if not answer.accepted:
            if key.baseline_ok:
                if key.revoked_at:
                    since = datetime.now(UTC) - datetime.fromisoformat(key.revoked_at)
                    self.telemetry.confirm_latency(key.venue, since.total_seconds())
                await self._end(
                    incident_id,
                    key,
                    KeyState.CONFIRMED,
                    (from_state,),
                    "key.confirmed",
                    f"venue rejects the key after revoke: {answer.detail}",
                )
            else:
                await self._end(
                    incident_id,
                    key,
                    KeyState.UNCONFIRMED,
                    (from_state,),
                    "key.unconfirmed",
                    f"rejected after revoke, but the baseline probe had failed too: {answer.detail}",
                )
        elif final:
            await self._end(
                incident_id,
                key,
                KeyState.LIVE,
                (from_state,),
                "key.live",
                "still authenticates at the verify deadline",
            )
        else:
            await self._apply(
                incident_id,
                Transition(key.key_id, key.venue, from_state, (from_state,), "key.verify.live", answer.detail),
            )

    async def _misconfigured(self, incident_id: str, key: SealedKey, error: Misconfigured) -> None:
        """End a key that keyrevoke's own set-up cannot revoke: not escalated, in no packet, no owner notice.

        The message says what to set; the commander fixes it and starts again, so the key is left as the
        platform had it (a frozen one is unfrozen: it was not revoked).
        """
        if key.state in (KeyState.FROZEN, KeyState.REVOKING):
            await self._tell_platform(incident_id, key, "unfreeze", KeyState.MISCONFIGURED)
        await self._apply(
            incident_id,
            Transition(
                key.key_id,
                key.venue,
                KeyState.MISCONFIGURED,
                (KeyState.PENDING, KeyState.FROZEN, KeyState.REVOKING),
                "key.misconfigured",
                str(error),
                {"ended_at": utc_now(), "detail": str(error)},
            ),
        )

    async def _end(
        self,
        incident_id: str,
        key: SealedKey,
        state: KeyState,
        from_states: tuple[KeyState, ...],
        event: str,
        detail: str,
    ) -> None:
        """Move a key to a final state and tell its owner what to do (the hook dedups retries)."""
        await self._tell_platform(incident_id, key, "notify", state)
        await self._apply(
            incident_id,
            Transition(
                key.key_id,
                key.venue,
                state,
                from_states,
                event,
                detail,
                {"ended_at": utc_now(), "detail": detail},
            ),
        )

    # --- plumbing -----------------------------------------------------------------------------

    def _adapter(self, venue: str) -> VenueAdapter:
        adapter = self.adapters.get(venue)
        if adapter is None:
            raise UnsupportedVenue(venue, "this worker has no adapter for the venue")
        return adapter

    def _target(self, key: SealedKey) -> KeyTarget:
        credentials = Credentials(
            self.ledger.open_secret(key, "api_key"),
            self.ledger.open_secret(key, "secret"),
            self.ledger.open_secret(key, "passphrase"),
        )
        return KeyTarget(key.key_id, key.account_id, key.account_name, key.method, key.fingerprint, credentials)

    async def _call(self, key: SealedKey, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """One request about ``key`` to its venue: through the circuit breaker, pacing and in-activity retries.

        Revokes go ahead of probes for the venue's next slot, and the riskier keys (inventory priority)
        ahead of the others.
        """
        venue = key.venue
        self._breakers[venue].check()
        # One span per call, retries included, that names the venue and the operation and nothing of
        # the key; each attempt counts as a request (the rate-limit headroom on the dashboard).
        with venue_call(venue, operation) as traced:

            def seen(error: VenueError) -> None:
                traced.failed(error)
                self.telemetry.venue_error(venue, type(error).__name__)
                if isinstance(error, VenueBanned):
                    self._breakers[venue].trip(error.retry_after)

            return await call_venue(
                traced.request(call),
                self._limiters[venue],
                self.limits.request_attempts,
                seen,
                urgent=operation == "revoke",
                priority=key.priority,
            )

    async def _apply(self, incident_id: str, transition: Transition) -> bool:
        """Record one transition; True if the key moved (False: a retry found it done already).

        It returns once the transition is committed (in a group with other keys' transitions), so a
        key is heartbeated as done only after its evidence is in the ledger.
        """
        moved = await self.writer.apply(incident_id, transition)
        if moved and transition.to_state not in transition.from_states:
            self.telemetry.key_transition(transition.venue, transition.to_state.value)
        return bool(moved)

    async def _tell_platform(
        self, incident_id: str, key: SealedKey, action: str, state: KeyState | None = None
    ) -> None:
        """Send a hook request; if the platform cannot take it, log that and go on.

        Revoking a leaked key matters more than the platform's bookkeeping: a hook that is down must
        not hold the revoke back. The failure is in the event log, for the humans to follow up.
        """
        try:
            await self.hook.send(self._hook_request(action, incident_id, key, state))
        except HookError as error:
            await asyncio.to_thread(
                self.ledger.append_event,
                incident_id,
                "keyrevoke",
                f"hook.{action}.failed",
                key.venue,
                key.key_id,
                str(error),
            )

    @staticmethod
    def _hook_request(action: str, incident_id: str, key: SealedKey, state: KeyState | None = None) -> HookRequest:
        state_name = state.value if state else ""
        return HookRequest(
            action,
            incident_id,
            key.key_id,
            key.venue,
            key.fingerprint,
            state_name,
            OWNER_MESSAGES.get(state_name, ""),
        )

    async def _run(
        self,
        incident_id: str,
        venue: str,
        key_ids: Sequence[str],
        step: Callable[[SealedKey], Awaitable[None]],
        riskiest_first: bool = False,
    ) -> list[str]:
        """Run ``step`` over the batch's keys, a bounded number at a time, heartbeating as keys finish.

        With ``riskiest_first`` the keys whose baseline showed withdraw, then transfer, then trade
        rights start first (pages already come riskiest first by the inventory's priority).
        """
        if venue not in self.adapters:
            raise ApplicationError(
                f"{venue}: this worker has no adapter for the venue",
                type="UnsupportedVenue",
                non_retryable=True,
            )
        done = _done_in_earlier_attempts()
        if done:
            activity.logger.info("resuming a batch: %d of its keys were done by an earlier attempt", len(done))
        todo = [key_id for key_id in key_ids if key_id not in done]
        keys = await asyncio.to_thread(self.ledger.load_keys, incident_id, todo)
        if riskiest_first:
            keys.sort(key=_risk, reverse=True)
        gate = asyncio.Semaphore(self.limits.keys_in_flight)

        async def one(key: SealedKey) -> None:
            async with gate:
                await step(key)
                done.append(key.key_id)
                if activity.in_activity():
                    activity.heartbeat(list(done))  # the SDK throttles what it sends

        try:
            async with _heartbeating(done), asyncio.TaskGroup() as group:
                for key in keys:
                    group.create_task(one(key))
        except* Exception as failures:
            # A venue's answer tells the retry policy what to do; anything else is told by its type only.
            venue_failures, others = failures.split(VenueError)
            if venue_failures is not None:
                raise batch_failure(_first(venue_failures.exceptions)) from None
            assert others is not None
            raise unexpected_failure(venue, others) from None
        return list(key_ids)

    async def _result(self, incident_id: str, key_ids: Sequence[str], proceed_state: KeyState) -> BatchResult:
        """Which keys of the batch are now in ``proceed_state``, read back from the ledger."""
        keys = await asyncio.to_thread(self.ledger.load_keys, incident_id, key_ids)
        proceed = tuple(k.key_id for k in keys if k.state is proceed_state)
        return BatchResult(proceed=proceed, ended=len(keys) - len(proceed))


_RISK = {"withdraw": 8, "transfer": 4, "trade": 2, "read": 1}


def _risk(key: SealedKey) -> int:
    """How much harm a key can do, from the rights its baseline probe found."""
    return sum(_RISK.get(right, 0) for right in key.permissions.split(",") if right)


def _first(errors: Sequence[BaseException]) -> VenueError:
    for error in errors:
        if isinstance(error, VenueError):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first(error.exceptions)
    raise AssertionError("except* VenueError matched no VenueError")


def _done_in_earlier_attempts() -> list[str]:
    """Keys an earlier attempt of this activity finished, from its last heartbeat.

    The ledger's conditional transitions would make a repeat harmless anyway; skipping saves the
    venue requests (a verify probe, say) that a repeat would send again.
    """
    if not activity.in_activity():
        return []
    details = activity.info().heartbeat_details
    if not details or not isinstance(details[0], list):
        return []
    return [str(key_id) for key_id in details[0]]


@contextlib.asynccontextmanager
async def _heartbeating(done: list[str]) -> AsyncIterator[None]:
    """Heartbeat the keys done so far while the batch runs (its pacing may outlast the heartbeat timeout)."""
    if not activity.in_activity():
        yield
        return

    async with repeating(lambda: activity.heartbeat(list(done)), HEARTBEAT_EVERY):
        yield
