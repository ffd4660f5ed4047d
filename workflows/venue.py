"""The venue workflow: one per incident and venue, owning that venue's pace.

It loads the venue's keys in pages through an activity, keeps a bounded window of batches in flight,
runs each batch through prepare (freeze + baseline probe), revoke and verify on the venue's own task
queue, and continues-as-new when its history grows, carrying the page cursor and its control state.

The incident workflow steers it by signal: ``pause`` and ``resume`` hold and release new work (a
request already sent finishes); ``stop`` ends it early: no key is revoked after the stop, keys already
revoked are still verified, and keys not yet revoked are handed back to the platform (compensation).

With the ``stop-cancels-batches`` patch a stop cancels the batches whose keys are not revoked yet (a
venue that is down or a batch stuck retrying cannot hold it up) and hands their keys back at once; a
revoke cut short still has the keys it did revoke verified. With ``bounded-batches`` a batch activity
has ``batch_attempts`` attempts; then its keys are tried one by one alone, and a key that fails alone
too ends failed (``give_up_keys``) with its last error, so that the other keys go on.

The ``progress`` query (``VenueProgress``) is what the commander's screens read of a venue: ``phase``
(running, paused, cancelling, awaiting_exchange), ``last_change_at`` (workflow time a batch step last
moved keys) and ``failing`` (the step whose attempts last ran out, with its last error, until a batch
of that step succeeds again). Attempts and the last failure of activities still retrying are in Temporal's
``describe()`` (pending activities), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from keyrevoke.models import (
        AcceptConfirmationRequest,
        BatchRequest,
        BatchResult,
        CompensateRequest,
        ExchangeConfirmation,
        GiveUpRequest,
        KeyRef,
        OwnerNoticeRequest,
        Page,
        PageRequest,
        StatePageRequest,
        VenueInput,
        VenueProgress,
        VerifyRequest,
    )
    from workflows import options
    from workflows.patches import (
        BATCHED_CONFIRMATIONS,
        BOUNDED_BATCHES,
        OWNER_NOTICES,
        PATCHES,
        SMALL_FIRST_BATCH,
        STOP_CANCELS_BATCHES,
    )

COMPENSATION_PAGE = 200

__all__ = ["PATCHES", "VenueWorkflow"]

KeyStep = BatchRequest | VerifyRequest


@workflow.defn
class VenueWorkflow:
    """Revoke and verify every key of one venue in one incident."""

    def __init__(self) -> None:
        self._input: VenueInput | None = None
        self._in_flight = 0
        self._batches_done = 0
        self._last_seq = 0
        self._exhausted = False
        self._paused = False
        self._stop_reason = ""
        self._awaiting_exchange = 0
        self._confirmation: ExchangeConfirmation | None = None
        self._confirmations: list[ExchangeConfirmation] = []  # received, not yet worked on
        self._prepared_batches = 0
        self._bounded = False  # bounded-batches
        self._prompt_stop = False  # stop-cancels-batches
        self._unrevoked: set[asyncio.Task[None]] = set()  # batches not past their revoke: a stop cancels them
        self._cancel_sent: set[asyncio.Task[None]] = set()
        self._last_change_at = ""
        self._failing = ""

    @workflow.run
    async def run(self, params: VenueInput) -> int:
        """Process the venue's keys after ``params.after_seq``; returns the number of batches done."""
        self._input = params
        self._batches_done = params.batches_done
        self._last_seq = params.after_seq
        self._paused = self._paused or params.paused
        self._stop_reason = self._stop_reason or params.stop_reason
        self._bounded = params.batch_attempts > 0 and workflow.patched(BOUNDED_BATCHES)
        self._prompt_stop = workflow.patched(STOP_CANCELS_BATCHES)
        running: set[asyncio.Task[None]] = set()
        compensation: asyncio.Task[None] | None = None
        small_first = self._small_first_batch(params)
        while True:
            while (
                not self._exhausted
                and not self._stop_reason
                and not self._paused
                and len(running) < params.batches_in_flight
                and not workflow.info().is_continue_as_new_suggested()
            ):
                page = await self._load_page(params, params.first_batch_size if small_first else params.batch_size)
                if not page.keys:
                    self._exhausted = True
                    break
                self._last_seq = page.last_seq
                batch = asyncio.create_task(self._run_batch(params, page.keys))
                running.add(batch)
                if small_first:
                    # The riskiest keys go first and alone: the other batches' probes would queue
                    # ahead of their revokes at the venue's pace.
                    small_first = False
                    await self._first_batch_prepared(batch)
            # Stopped: what is not revoked yet is handed back now, not after the batches end.
            if self._prompt_stop and self._stop_reason and compensation is None and not self._cancel_unrevoked(running):
                compensation = asyncio.create_task(self._compensate(params))
            self._in_flight = len(running)
            if not running:
                if self._exhausted or self._stop_reason:
                    break
                if self._paused:
                    await workflow.wait_condition(lambda: not self._paused or bool(self._stop_reason))
                    continue
                # Loading stopped because the history is long: start afresh from the cursor.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    replace(
                        params,
                        after_seq=self._last_seq,
                        batches_done=self._batches_done,
                        paused=self._paused,
                        stop_reason=self._stop_reason,
                    )
                )
            # Wake on a finished batch, and on pause/resume/stop so loading reacts at once.
            waiter = asyncio.create_task(self._control_changes((self._paused, self._stop_reason)))
            done, _ = await workflow.wait([*running, waiter], return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
            for task in done:
                if task is waiter:
                    continue
                running.discard(task)
                if task in self._cancel_sent and (task.cancelled() or _cancellation(task.exception())):
                    continue  # cut short by the stop
                task.result()  # a failed batch fails the venue workflow: its retry policy is exhausted
                self._batches_done += 1
            self._in_flight = len(running)
        if compensation is not None:
            await compensation
            await self._notify_owners(params)
        elif self._stop_reason:
            await self._compensate(params)
            await self._notify_owners(params)
        else:
            await self._escalation(params)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._batches_done

    def _cancel_unrevoked(self, running: set[asyncio.Task[None]]) -> bool:
        """Cancel the running batches whose keys are not revoked yet; True while any is still ending."""
        ending = False
        for task in running:
            if task in self._unrevoked:
                ending = True
                if task not in self._cancel_sent:
                    self._cancel_sent.add(task)
                    task.cancel()
        return ending

    async def _control_changes(self, seen: tuple[bool, str]) -> None:
        await workflow.wait_condition(lambda: (self._paused, self._stop_reason) != seen)

    async def _first_batch_prepared(self, batch: asyncio.Task[None]) -> None:
        await workflow.wait_condition(lambda: self._prepared_batches > 0 or batch.done() or bool(self._stop_reason))

    @staticmethod
    def _small_first_batch(params: VenueInput) -> bool:
        """Whether this run starts the venue with a small first batch (only at the venue's very start)."""
        fresh = params.after_seq == 0 and params.batches_done == 0
        # patched() only where it can matter, so histories from before it replay unchanged.
        return fresh and 0 < params.first_batch_size < params.batch_size and workflow.patched(SMALL_FIRST_BATCH)

    async def _load_page(self, params: VenueInput, limit: int) -> Page:
        page: Page = await workflow.execute_activity(
            options.LOAD_PAGE,
            PageRequest(params.incident_id, params.venue, self._last_seq, limit),
            result_type=Page,
            task_queue=params.control_queue,
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        return page

    async def _batch(
        self,
        name: str,
        params: VenueInput,
        request: BatchRequest | VerifyRequest | CompensateRequest | AcceptConfirmationRequest,
    ) -> BatchResult:
        retry = options.BATCH_RETRY
        if self._bounded and name in _BOUNDED_STEPS:
            retry = replace(retry, maximum_attempts=params.batch_attempts)
        result: BatchResult = await workflow.execute_activity(
            name,
            request,
            result_type=BatchResult,
            task_queue=params.task_queue,
            start_to_close_timeout=options.BATCH_TIMEOUT,
            heartbeat_timeout=options.BATCH_HEARTBEAT,
            retry_policy=retry,
            # A stop waits for a cancelled batch to end, so that it freezes or revokes nothing after
            # its keys were handed back; the heartbeat brings the cancel within seconds.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if self._prompt_stop
            else ActivityCancellationType.TRY_CANCEL,
        )
        if name in _BOUNDED_STEPS:
            self._last_change_at = workflow.now().isoformat()
        return result

    async def _step(self, name: str, params: VenueInput, request: KeyStep) -> BatchResult:
        """A batch step over keys; once its attempts run out, each key is tried alone, and one that
        fails alone too ends with its last error (bounded-batches), so that it holds up no other key."""
        if not self._bounded:
            return await self._batch(name, params, request)
        try:
            result = await self._batch(name, params, request)
        except ActivityError as error:
            if _cancellation(error):
                raise
            self._failing = f"{name}: {_reason(error)}"
            if len(request.key_ids) == 1:
                return await self._failed_alone(params, name, request.key_ids, error)
            alone = await asyncio.gather(*(self._alone(name, params, request, key_id) for key_id in request.key_ids))
            return BatchResult(tuple(k for r in alone for k in r.proceed), sum(r.ended for r in alone))
        if self._failing.startswith(f"{name}:"):
            self._failing = ""  # the step works again
        return result

    async def _alone(self, name: str, params: VenueInput, request: KeyStep, key_id: str) -> BatchResult:
        try:
            return await self._batch(name, params, replace(request, key_ids=(key_id,)))
        except ActivityError as error:
            if _cancellation(error):
                raise
            return await self._failed_alone(params, name, (key_id,), error)

    async def _failed_alone(
        self, params: VenueInput, name: str, key_ids: tuple[str, ...], error: ActivityError
    ) -> BatchResult:
        if name == options.PROBE_ESCALATED_BATCH:
            return BatchResult()  # still escalated: the next round probes it again
        return await self._give_up(params, name, key_ids, error)

    async def _give_up(
        self, params: VenueInput, name: str, key_ids: tuple[str, ...], error: ActivityError
    ) -> BatchResult:
        ended: int = await workflow.execute_activity(
            options.GIVE_UP_KEYS,
            GiveUpRequest(params.incident_id, params.venue, key_ids, name, _reason(error)),
            result_type=int,
            task_queue=params.control_queue,
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        self._last_change_at = workflow.now().isoformat()
        return BatchResult(ended=ended)

    async def _proceed(self) -> bool:
        """Wait while paused; False once stopped (what is not revoked yet must stay unrevoked)."""
        await workflow.wait_condition(lambda: not self._paused or bool(self._stop_reason))
        return not self._stop_reason

    async def _run_batch(self, params: VenueInput, keys: tuple[KeyRef, ...]) -> None:
        """One batch's whole life: prepare, revoke, then verify until confirmed or the deadline."""
        if self._prompt_stop:
            await self._run_batch_stoppable(params, keys)
            return
        key_ids = tuple(k.key_id for k in keys)
        prepared = await self._batch(
            options.PREPARE_BATCH, params, BatchRequest(params.incident_id, params.venue, key_ids)
        )
        self._prepared_batches += 1
        if not prepared.proceed or not await self._proceed():
            return
        revoked = await self._batch(
            options.REVOKE_BATCH, params, BatchRequest(params.incident_id, params.venue, prepared.proceed)
        )
        await self._verify_until_deadline(params, revoked.proceed)

    async def _run_batch_stoppable(self, params: VenueInput, keys: tuple[KeyRef, ...]) -> None:
        """``_run_batch`` that a stop cuts short until its revoke is done (stop-cancels-batches)."""
        task = asyncio.current_task()
        assert task is not None
        self._unrevoked.add(task)
        try:
            try:
                prepared = await self._step(
                    options.PREPARE_BATCH,
                    params,
                    BatchRequest(params.incident_id, params.venue, tuple(k.key_id for k in keys)),
                )
                self._prepared_batches += 1
                if not prepared.proceed or not await self._proceed():
                    return
            except (asyncio.CancelledError, ActivityError) as error:
                if _cancellation(error) and task in self._cancel_sent:
                    return  # stopped: compensation hands the keys back
                raise
            try:
                revoked = await self._step(
                    options.REVOKE_BATCH, params, BatchRequest(params.incident_id, params.venue, prepared.proceed)
                )
            except (asyncio.CancelledError, ActivityError) as error:
                if not (_cancellation(error) and task in self._cancel_sent):
                    raise
                # The revoke was cut short: keys it deleted before the stop are verified all the same
                # (the verify step probes only the keys recorded revoked).
                self._unrevoked.discard(task)
                await self._verify_until_deadline(params, prepared.proceed)
                return
        finally:
            self._unrevoked.discard(task)
        await self._verify_until_deadline(params, revoked.proceed)

    async def _verify_until_deadline(self, params: VenueInput, keys: tuple[str, ...]) -> None:
        """Probe revoked keys until the venue rejects each, or the deadline reports it live."""
        deadline = workflow.now() + timedelta(seconds=params.verify_deadline_seconds)
        interval = timedelta(seconds=params.verify_interval_seconds)
        pending = keys
        while pending:
            # Revoked keys are verified even after a stop: their owners must learn the truth.
            if self._paused and not self._stop_reason:
                await self._proceed()
            final = workflow.now() + interval >= deadline
            verified = await self._step(
                options.VERIFY_BATCH, params, VerifyRequest(params.incident_id, params.venue, pending, final)
            )
            pending = verified.proceed
            if pending and not final:
                await workflow.sleep(interval)

    async def _escalation(self, params: VenueInput) -> None:
        """Keys the venue would not revoke: a packet for the exchange, then wait for its word.

        While waiting, escalated keys are probed now and then: one the venue starts rejecting was
        revoked on the exchange's side. The commander's confirmation (``exchange_confirmed``) moves
        the rest to verification, whose deadline reports any key still working as live.
        """
        packet = await self._batch(
            options.WRITE_ESCALATION_PACKET, params, BatchRequest(params.incident_id, params.venue, ())
        )
        # The venue's own work is done: each owner hears where their keys stand.
        await self._notify_owners(params)
        if packet.ended == 0:
            return
        self._awaiting_exchange = packet.ended
        deadline = workflow.now() + timedelta(seconds=params.escalation_wait_seconds)
        interval = params.escalation_probe_interval_seconds
        told = packet.ended  # escalated keys when the owners were last told
        if workflow.patched(BATCHED_CONFIRMATIONS):
            await self._confirmations_in_batches(params, deadline, interval, told)
            await self._notify_owners(params)
            return
        while self._confirmation is None and not self._stop_reason and workflow.now() < deadline:
            escalated = await self._each_page(params, "escalated", self._probe_escalated)
            if not escalated:
                break  # the exchange revoked every escalated key, and the probes saw it
            if escalated < told:
                # The probes saw the exchange revoke some: their owners hear it now, not at the end.
                told = escalated
                await self._notify_owners(params)
            with contextlib.suppress(TimeoutError):  # the probe interval passed: probe again
                await workflow.wait_condition(
                    lambda: self._confirmation is not None or bool(self._stop_reason), timeout=interval
                )
        if self._confirmation is not None:
            confirmation = self._confirmation
            await self._each_page(params, "escalated", lambda keys: self._accept_and_verify(params, keys, confirmation))
        self._awaiting_exchange = 0
        await self._notify_owners(params)

    async def _notify_owners(self, params: VenueInput) -> None:
        """One notice per owner with keys at this venue, listing all their keys (unchanged ones are not resent)."""
        # patched() only where a notice goes, so histories from before it replay unchanged.
        if not workflow.patched(OWNER_NOTICES):
            return
        await workflow.execute_activity(
            options.NOTIFY_OWNERS,
            OwnerNoticeRequest(params.incident_id, params.venue),
            result_type=int,
            task_queue=params.control_queue,
            start_to_close_timeout=options.NOTICE_TIMEOUT,
            heartbeat_timeout=options.NOTICE_HEARTBEAT,
            retry_policy=options.CONTROL_RETRY,
        )

    async def _confirmations_in_batches(
        self, params: VenueInput, deadline: datetime, interval: float, told: int
    ) -> None:
        """Wait for the exchange, which confirms its revokes in batches: each confirmation is worked on
        as it comes, until no key is escalated any more, the wait ends, or the venue is stopped."""
        while not self._stop_reason and workflow.now() < deadline:
            while self._confirmations:
                await self._accept_confirmation(params, self._confirmations.pop(0))
            self._awaiting_exchange = await self._each_page(params, "escalated", self._probe_escalated)
            if not self._awaiting_exchange:
                break  # the exchange revoked every escalated key: confirmed, or seen by the probes
            if self._awaiting_exchange < told:
                # Some were revoked (confirmed, or seen by the probes): their owners hear it now, not at the end.
                told = self._awaiting_exchange
                await self._notify_owners(params)
            if self._confirmations:
                continue
            with contextlib.suppress(TimeoutError):  # the probe interval passed: probe again
                await workflow.wait_condition(
                    lambda: bool(self._confirmations) or bool(self._stop_reason), timeout=interval
                )
        # A confirmation that came as the wait ended is the exchange's word all the same.
        while self._confirmations:
            await self._accept_confirmation(params, self._confirmations.pop(0))
        self._awaiting_exchange = 0

    async def _accept_confirmation(self, params: VenueInput, confirmation: ExchangeConfirmation) -> None:
        """Move the confirmed keys (the listed ones, or every escalated one) on to verification."""
        if not confirmation.key_ids:
            await self._each_page(params, "escalated", lambda keys: self._accept_and_verify(params, keys, confirmation))
            return
        chunks = [
            confirmation.key_ids[i : i + params.batch_size]
            for i in range(0, len(confirmation.key_ids), params.batch_size)
        ]
        # Each batch names its own keys: the whole list need not travel with every one of them.
        per_batch = ExchangeConfirmation(confirmation.actor)
        for first in range(0, len(chunks), params.batches_in_flight):
            window = chunks[first : first + params.batches_in_flight]
            await asyncio.gather(*(self._accept_and_verify(params, keys, per_batch) for keys in window))

    async def _probe_escalated(self, keys: tuple[str, ...]) -> None:
        assert self._input is not None
        await self._step(
            options.PROBE_ESCALATED_BATCH, self._input, BatchRequest(self._input.incident_id, self._input.venue, keys)
        )

    async def _accept_and_verify(
        self, params: VenueInput, keys: tuple[str, ...], confirmation: ExchangeConfirmation
    ) -> None:
        accepted = await self._batch(
            options.ACCEPT_EXCHANGE_CONFIRMATION,
            params,
            AcceptConfirmationRequest(params.incident_id, params.venue, confirmation, keys),
        )
        await self._verify_until_deadline(params, accepted.proceed)

    async def _each_page(
        self, params: VenueInput, state: str, work: Callable[[tuple[str, ...]], Awaitable[None]]
    ) -> int:
        """Run ``work`` over the venue's keys in ``state``, a window of pages at once; returns how many."""
        after = 0
        seen = 0
        while True:
            pages: list[tuple[str, ...]] = []
            for _ in range(params.batches_in_flight):
                page: Page = await workflow.execute_activity(
                    options.LOAD_STATE_PAGE,
                    StatePageRequest(params.incident_id, params.venue, state, after, params.batch_size),
                    result_type=Page,
                    task_queue=params.control_queue,
                    start_to_close_timeout=options.CONTROL_TIMEOUT,
                    retry_policy=options.CONTROL_RETRY,
                )
                if not page.keys:
                    break
                after = page.last_seq
                pages.append(tuple(k.key_id for k in page.keys))
            if not pages:
                return seen
            seen += sum(len(keys) for keys in pages)
            await asyncio.gather(*(work(keys) for keys in pages))

    async def _compensate(self, params: VenueInput) -> None:
        """Hand every key that was not revoked back to the platform, a page at a time."""
        while True:
            result = await self._batch(
                options.COMPENSATE_BATCH,
                params,
                CompensateRequest(params.incident_id, params.venue, self._stop_reason, COMPENSATION_PAGE),
            )
            if result.ended == 0:
                return

    @workflow.signal
    def pause(self) -> None:
        """Hold new work: no new batch, no next step; requests already sent finish."""
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = False

    @workflow.signal
    def exchange_confirmed(self, confirmation: ExchangeConfirmation) -> None:
        """The commander relays the exchange's word that it revoked the escalated keys (or some)."""
        self._confirmation = confirmation
        self._confirmations.append(confirmation)

    @workflow.signal
    def stop(self, reason: str) -> None:
        """End early: revoke nothing more, verify what is revoked, unfreeze the rest."""
        self._stop_reason = reason or "stopped"

    @workflow.query
    def progress(self) -> VenueProgress:
        """Small, whatever the number of keys: per-key truth is in the ledger."""
        venue = self._input.venue if self._input else ""
        return VenueProgress(
            venue,
            self._batches_done,
            self._in_flight,
            self._last_seq,
            self._exhausted,
            self._paused,
            self._stop_reason,
            self._awaiting_exchange,
            self._confirmation.actor if self._confirmation else "",
            self._phase(),
            self._last_change_at,
            self._failing,
        )

    def _phase(self) -> str:
        if self._stop_reason:
            return "cancelling"
        if self._awaiting_exchange:
            return "awaiting_exchange"
        return "paused" if self._paused else "running"


#: batch steps over keys: bounded, and their keys tried alone once the attempts run out (bounded-batches)
_BOUNDED_STEPS = frozenset(
    {options.PREPARE_BATCH, options.REVOKE_BATCH, options.VERIFY_BATCH, options.PROBE_ESCALATED_BATCH}
)


def _cancellation(error: BaseException | None) -> bool:
    """Whether ``error`` is a cancellation (of the batch's task, or of its activity)."""
    if isinstance(error, asyncio.CancelledError | CancelledError):
        return True
    return isinstance(error, ActivityError) and isinstance(error.cause, CancelledError)


def _reason(error: ActivityError) -> str:
    """The last failure of a step as ``Type: message`` (the activities raise classified errors, no secrets)."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'ApplicationError'}: {cause.message}"
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(error).__name__}: {error}"
