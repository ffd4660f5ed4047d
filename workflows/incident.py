"""The incident workflow: one per incident, the commander's handle on a mass revoke.

Its id derives from the incident id, so a second start of the same incident joins the first instead
of doubling the work. It plans the scope through an activity (the ledger does the heavy lifting),
optionally waits for a second person's approval, starts one venue workflow per venue, takes the
commander's updates (pause, resume, cancel, narrow, approve, confirm), and returns the summary counted
from the ledger. Every action, the start too, must be signed by a registered operator's key: an
activity verifies the signature, this workflow refuses a signed action it has seen before and an
approval by the starter. Every accepted update is written to the event log with the operator's name
and key fingerprint.

Control is honoured from the first moment: pause, resume, cancel and narrow are taken while the
incident is still planning, and one given while a venue workflow is being started reaches it once it
has started (patch ``control-during-start``). The same actions also come as the ``control`` signal
(action name, ``ControlRequest``), signed like the updates: a signal waits in the history until a
worker runs, where an update needs a worker to answer it; a refused signal is written to the event
log as ``incident.control.refused``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from keyrevoke.models import (
        START_WITH_APPROVAL,
        ConfirmationCheckRequest,
        ConfirmRequest,
        ControlRequest,
        ExchangeConfirmation,
        IncidentEvent,
        IncidentInput,
        IncidentPlan,
        IncidentState,
        IncidentSummary,
        Operator,
        SignedAction,
        VenueInput,
        VerifyActionRequest,
        control_queue,
        keys_digest,
        signature_digest,
        venue_queue,
    )
    from workflows import options
    from workflows.patches import CHECKED_CONFIRMATIONS, CONTROL_DURING_START, PATCHES, SIGNED_ACTIONS
    from workflows.venue import VenueWorkflow

__all__ = ["PATCHES", "IncidentWorkflow", "incident_workflow_id", "venue_workflow_id"]

Request = TypeVar("Request", ControlRequest, ConfirmRequest)
Result = TypeVar("Result")


def incident_workflow_id(incident_id: str) -> str:
    """The workflow id of an incident: one running incident workflow per incident id."""
    return f"keyrevoke-incident-{incident_id}"


def venue_workflow_id(incident_id: str, venue: str) -> str:
    return f"keyrevoke-incident-{incident_id}-venue-{venue}"


@workflow.defn
class IncidentWorkflow:
    """Plan an incident, fan it out to one venue workflow per venue, and summarize the outcome."""

    def __init__(self) -> None:
        self._params: IncidentInput | None = None
        self._plan: IncidentPlan | None = None
        self._phase = "planning"
        self._approved_by = ""
        self._paused_all = False
        self._paused: set[str] = set()
        self._stopped: dict[str, str] = {}  # venue -> reason
        self._cancel_reason = ""
        self._venues_done: list[str] = []
        self._children: dict[str, ChildWorkflowHandle[VenueWorkflow, int]] = {}
        self._starter: Operator | None = None
        self._used_signatures: set[str] = set()  # every signed action seen: none is acted on twice

    @workflow.run
    async def run(self, params: IncidentInput) -> IncidentSummary:
        self._params = params
        if workflow.patched(SIGNED_ACTIONS):
            # A start nobody registered signed does nothing: the workflow fails with the reason.
            self._starter = await self._verified(
                VerifyActionRequest(
                    params.incident_id,
                    "start",
                    params.scope_venues,
                    START_WITH_APPROVAL if params.require_approval else "",
                    params.scope_owners,
                    params.scope_owners_sha256 or keys_digest(()),
                    params.start_signed,
                    workflow.info().workflow_start_time.isoformat(),
                )
            )
        self._plan = await workflow.execute_activity(
            options.PLAN_INCIDENT,
            params.incident_id,
            result_type=IncidentPlan,
            task_queue=control_queue(params.task_queue_prefix),
            start_to_close_timeout=options.PLAN_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        if params.require_approval:
            self._phase = "awaiting_approval"
            await workflow.wait_condition(lambda: bool(self._approved_by or self._cancel_reason))
        self._phase = "cancelling" if self._cancel_reason else "running"
        venues = [v.venue for v in self._plan.venues if v.keys > 0]
        for venue in venues:
            sent = self._venue_input(params, venue)
            self._children[venue] = await workflow.start_child_workflow(
                VenueWorkflow.run,
                sent,
                id=venue_workflow_id(params.incident_id, venue),
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            )
            await self._catch_up(venue, sent)
        await asyncio.gather(*(self._finish(venue) for venue in venues))
        self._phase = "summarizing"
        await workflow.wait_condition(workflow.all_handlers_finished)
        summary: IncidentSummary = await workflow.execute_activity(
            options.SUMMARIZE_INCIDENT,
            params.incident_id,
            result_type=IncidentSummary,
            task_queue=control_queue(params.task_queue_prefix),
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        self._phase = "completed"
        return summary

    def _venue_input(self, params: IncidentInput, venue: str) -> VenueInput:
        # Control given before the venue started (while awaiting approval) travels in its input.
        return VenueInput(
            incident_id=params.incident_id,
            venue=venue,
            task_queue=venue_queue(params.task_queue_prefix, venue),
            control_queue=control_queue(params.task_queue_prefix),
            batch_size=params.batch_size,
            batches_in_flight=params.batches_in_flight,
            verify_interval_seconds=params.verify_interval_seconds,
            verify_deadline_seconds=params.verify_deadline_seconds,
            paused=self._paused_all or venue in self._paused,
            stop_reason=self._cancel_reason or self._stopped.get(venue, ""),
            escalation_wait_seconds=params.escalation_wait_seconds,
            escalation_probe_interval_seconds=params.escalation_probe_interval_seconds,
            first_batch_size=params.first_batch_size,
            batch_attempts=params.batch_attempts,
        )

    async def _catch_up(self, venue: str, sent: VenueInput) -> None:
        """Control given while the venue's workflow was starting (after its input was made) reaches it now."""
        stop = self._cancel_reason or self._stopped.get(venue, "")
        paused = self._paused_all or venue in self._paused
        missed_stop = bool(stop) and not sent.stop_reason
        if not (missed_stop or paused != sent.paused):
            return
        # patched() only where it can matter, so histories from before it replay unchanged.
        if not workflow.patched(CONTROL_DURING_START):
            return
        child = self._children[venue]
        if missed_stop:
            await child.signal(VenueWorkflow.stop, stop)
        elif paused != sent.paused:
            await child.signal(VenueWorkflow.pause if paused else VenueWorkflow.resume)

    async def _finish(self, venue: str) -> None:
        await self._children[venue]
        self._venues_done.append(venue)

    async def _record(
        self, request: ControlRequest, kind: str, detail: str = "", operator: Operator | None = None
    ) -> None:
        if self._params is None:  # control may come before the run has read its input
            await workflow.wait_condition(lambda: self._params is not None)
        assert self._params is not None
        actor = operator.actor if operator else request.actor
        await workflow.execute_activity(
            options.RECORD_EVENT,
            IncidentEvent(self._params.incident_id, actor, kind, request.venue, detail or request.reason),
            task_queue=control_queue(self._params.task_queue_prefix),
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )

    async def _signal(self, venues: list[str], signal: str, *args: str) -> None:
        for venue in venues:
            child = self._children.get(venue)
            if child is not None and venue not in self._venues_done:
                await child.signal(signal, *args)

    def _venues(self) -> list[str]:
        return [v.venue for v in self._plan.venues if v.keys > 0] if self._plan else []

    # --- signed actions --------------------------------------------------------------------------

    async def _verified(self, request: VerifyActionRequest) -> Operator:
        """The registered operator who signed ``request``, verified by an activity; refusals are one line."""
        assert self._params is not None
        if request.signed is None:
            raise _refused(f"{request.action} is not signed: every control action needs an operator's signature")
        digest = signature_digest(request.signed)
        if digest in self._used_signatures:
            raise _refused("this signed action was already used (a replay): sign the action again")
        self._used_signatures.add(digest)
        operator: Operator = await self._checked(options.VERIFY_ACTION, request, Operator)
        return operator

    async def _checked(self, activity: str, argument: object, result_type: type[Result]) -> Result:
        """A check on the control queue; its refusal reaches the commander as the update's one-line reason."""
        assert self._params is not None
        try:
            result: Result = await workflow.execute_activity(
                activity,
                argument,
                result_type=result_type,
                task_queue=control_queue(self._params.task_queue_prefix),
                start_to_close_timeout=options.CONTROL_TIMEOUT,
                retry_policy=options.CONTROL_RETRY,
            )
        except ActivityError as error:
            raise _refused(_reason(error)) from None
        return result

    async def _authorized(
        self, request: Request, action: str, validate: Callable[[Request], None], key_ids: tuple[str, ...] = ()
    ) -> Operator | None:
        """The operator behind an update (None in histories from before signed actions).

        The state may have changed while the signature was checked: the validator runs again.
        """
        if not workflow.patched(SIGNED_ACTIONS):
            return None
        if self._params is None:  # an update may come before the run has read its input
            await workflow.wait_condition(lambda: self._params is not None)
        assert self._params is not None
        reason = request.reason if isinstance(request, ControlRequest) else ""
        operator = await self._verified(
            VerifyActionRequest.of(
                self._params.incident_id,
                action,
                request.signed,
                request.venue,
                reason,
                key_ids,
                workflow.now().isoformat(),
            )
        )
        try:
            validate(request)
        except ValueError as error:
            raise _refused(str(error)) from None
        return operator

    def _refuse_replay(self, signed: SignedAction | None, action: str) -> None:
        # Cheap checks before anything is recorded; the handler verifies the signature itself.
        if self._starter is None:
            return  # an incident started before signed actions (its handler still verifies the signature)
        if signed is None:
            raise ValueError(f"{action} is not signed: every control action needs an operator's signature")
        if signature_digest(signed) in self._used_signatures:
            raise ValueError("this signed action was already used (a replay): sign the action again")

    # --- the commander's updates ----------------------------------------------------------------

    def _refuse_unless_open(self, request: ControlRequest) -> None:
        if self._phase in ("summarizing", "completed"):
            raise ValueError("the incident has finished: nothing left to control")
        if self._cancel_reason:
            raise ValueError(f"the incident is cancelled ({self._cancel_reason})")
        if not request.actor:
            raise ValueError("the action names no actor")
        # While planning, the scope is not known yet: a venue without keys is left alone once it is.
        if request.venue and self._plan is not None and request.venue not in self._venues():
            raise ValueError(
                f"venue {request.venue!r} has no keys in this incident (venues: {', '.join(self._venues())})"
            )
        if request.venue and request.venue in self._stopped:
            raise ValueError(f"venue {request.venue!r} was taken out of the incident")

    @workflow.update
    async def pause(self, request: ControlRequest) -> str:
        """Hold new work at one venue, or everywhere."""
        return await self._pause(request, await self._authorized(request, "pause", self._can_pause))

    async def _pause(self, request: ControlRequest, operator: Operator | None) -> str:
        targets = [request.venue] if request.venue else self._venues()
        if request.venue:
            self._paused.add(request.venue)
        else:
            self._paused_all = True
        await self._signal(targets, "pause")
        await self._record(request, "incident.paused", operator=operator)
        return f"paused {request.venue or 'every venue'}"

    @pause.validator
    def _validate_pause(self, request: ControlRequest) -> None:
        self._refuse_replay(request.signed, "pause")
        self._can_pause(request)

    def _can_pause(self, request: ControlRequest) -> None:
        self._refuse_unless_open(request)
        if self._paused_all or (request.venue and request.venue in self._paused):
            raise ValueError(f"{request.venue or 'the incident'} is already paused")

    @workflow.update
    async def resume(self, request: ControlRequest) -> str:
        """Release a pause, at one venue or everywhere."""
        return await self._resume(request, await self._authorized(request, "resume", self._can_resume))

    async def _resume(self, request: ControlRequest, operator: Operator | None) -> str:
        if request.venue:
            self._paused.discard(request.venue)
            targets = [] if self._paused_all else [request.venue]
        else:
            self._paused_all = False
            targets = [v for v in self._venues() if v not in self._paused]
        await self._signal(targets, "resume")
        await self._record(request, "incident.resumed", operator=operator)
        return f"resumed {request.venue or 'the incident'}"

    @resume.validator
    def _validate_resume(self, request: ControlRequest) -> None:
        self._refuse_replay(request.signed, "resume")
        self._can_resume(request)

    def _can_resume(self, request: ControlRequest) -> None:
        self._refuse_unless_open(request)
        if request.venue and request.venue not in self._paused:
            raise ValueError(f"venue {request.venue!r} is not paused")
        if not request.venue and not self._paused_all and not self._paused:
            raise ValueError("nothing is paused")

    @workflow.update
    async def cancel(self, request: ControlRequest) -> str:
        """Stop everything: revoke nothing more, verify what was revoked, unfreeze the rest."""
        return await self._cancel(request, await self._authorized(request, "cancel", self._can_cancel))

    async def _cancel(self, request: ControlRequest, operator: Operator | None) -> str:
        self._cancel_reason = request.reason or f"cancelled by {operator.name if operator else request.actor}"
        if self._phase in ("planning", "awaiting_approval", "running"):
            self._phase = "cancelling"
        await self._signal(self._venues(), "stop", self._cancel_reason)
        await self._record(request, "incident.cancelled", self._cancel_reason, operator)
        return "cancelled: keys not yet revoked are handed back to the platform"

    @cancel.validator
    def _validate_cancel(self, request: ControlRequest) -> None:
        self._refuse_replay(request.signed, "cancel")
        self._can_cancel(request)

    def _can_cancel(self, request: ControlRequest) -> None:
        if request.venue:
            raise ValueError("cancel applies to the whole incident; to drop one venue, narrow the incident")
        self._refuse_unless_open(request)

    @workflow.update
    async def narrow(self, request: ControlRequest) -> str:
        """Take one venue out of the incident: its keys not yet revoked are handed back."""
        return await self._narrow(request, await self._authorized(request, "narrow", self._can_narrow))

    async def _narrow(self, request: ControlRequest, operator: Operator | None) -> str:
        reason = request.reason or f"narrowed by {operator.name if operator else request.actor}"
        self._stopped[request.venue] = reason
        await self._signal([request.venue], "stop", reason)
        await self._record(request, "incident.narrowed", reason, operator)
        return f"venue {request.venue} taken out of the incident"

    @narrow.validator
    def _validate_narrow(self, request: ControlRequest) -> None:
        self._refuse_replay(request.signed, "narrow")
        self._can_narrow(request)

    def _can_narrow(self, request: ControlRequest) -> None:
        if not request.venue:
            raise ValueError("narrow needs the venue to take out")
        self._refuse_unless_open(request)
        if request.venue in self._venues_done:
            raise ValueError(f"venue {request.venue!r} has already finished")

    @workflow.signal(name="control")
    async def control_signal(self, action: str, request: ControlRequest) -> None:
        """Pause, resume, cancel or narrow as a durable signal: it acts when a worker runs.

        The same checks as the update of that name, the signature included; a refusal goes to the
        event log, as nobody waits for an answer.
        """
        if self._params is None:
            await workflow.wait_condition(lambda: self._params is not None)
        actions = {
            "pause": (self._validate_pause, self._can_pause, self._pause),
            "resume": (self._validate_resume, self._can_resume, self._resume),
            "cancel": (self._validate_cancel, self._can_cancel, self._cancel),
            "narrow": (self._validate_narrow, self._can_narrow, self._narrow),
        }
        if action not in actions:
            await self._record(
                request, "incident.control.refused", f"{action}: not an action (pause, resume, cancel, narrow)"
            )
            return
        validate, can, act = actions[action]
        try:
            validate(request)
            operator = await self._authorized(request, action, can)
        except (ValueError, ApplicationError) as refused:
            await self._record(request, "incident.control.refused", f"{action}: {refused}")
            return
        await act(request, operator)

    @workflow.update
    async def confirm(self, request: ConfirmRequest) -> str:
        """The exchange revoked the venue's escalated keys (all, or those listed) on its side.

        Exchanges confirm in batches: each confirm names its own keys, and each is checked (every
        listed key an escalated key of the venue, the venue waiting for the exchange) before it
        reaches the venue, so a refused confirm leaves nothing behind for later.
        """
        operator = await self._authorized(request, "confirm", self._can_confirm, request.key_ids)
        actor = operator.actor if operator else request.actor
        if workflow.patched(CHECKED_CONFIRMATIONS):
            assert self._params is not None
            await self._checked(
                options.CHECK_CONFIRMATION,
                ConfirmationCheckRequest(self._params.incident_id, request.venue, request.key_ids),
                int,
            )
            if request.venue in self._venues_done:
                raise _refused(_no_longer_waits(request.venue))
        child = self._children[request.venue]
        try:
            await child.signal(VenueWorkflow.exchange_confirmed, ExchangeConfirmation(actor, request.key_ids))
        except FailureError:
            # The venue ended between the check and the signal (its escalation wait ran out).
            raise _refused(_no_longer_waits(request.venue)) from None
        scope = f"{len(request.key_ids)} listed keys" if request.key_ids else "every escalated key"
        await self._record(
            ControlRequest(request.actor, request.venue), "incident.exchange_confirmed", f"{scope}: verifying", operator
        )
        return f"{request.venue}: {scope} marked revoked by the exchange; verifying them now"

    @confirm.validator
    def _validate_confirm(self, request: ConfirmRequest) -> None:
        self._refuse_replay(request.signed, "confirm")
        self._can_confirm(request)

    def _can_confirm(self, request: ConfirmRequest) -> None:
        self._refuse_unless_open(ControlRequest(request.actor, request.venue))
        if not request.venue:
            raise ValueError("confirm needs the venue whose exchange revoked the keys")
        if request.venue not in self._children:
            raise ValueError(f"venue {request.venue!r} has not started yet")
        if request.venue in self._venues_done:
            raise ValueError(_no_longer_waits(request.venue))

    @workflow.update
    async def approve(self, request: ControlRequest) -> str:
        """The second person's approval of a planned incident: another registered key than the starter's."""
        operator = await self._authorized(request, "approve", self._can_approve)
        if operator is not None and self._starter is not None and operator.is_same_person(self._starter):
            raise _refused(
                f"{operator.name} ({operator.fingerprint}) started this incident: the approval must come from "
                "another registered operator"
            )
        self._approved_by = operator.actor if operator else request.actor
        await self._record(request, "incident.approved", operator=operator)
        return f"approved by {operator.name if operator else request.actor}"

    @approve.validator
    def _validate_approve(self, request: ControlRequest) -> None:
        self._refuse_replay(request.signed, "approve")
        self._can_approve(request)

    def _can_approve(self, request: ControlRequest) -> None:
        if self._phase != "awaiting_approval" or self._approved_by:
            raise ValueError(f"the incident is not waiting for approval (it is {self._phase})")
        if not request.actor:
            raise ValueError("the approval names no actor")
        if self._starter is None and self._params is not None and request.actor == self._params.started_by:
            raise ValueError(f"{request.actor} started this incident: the approval must come from another person")

    @workflow.query
    def state(self) -> IncidentState:
        """Phase, plan and control state: small, whatever the number of keys."""
        params = self._params
        return IncidentState(
            incident_id=params.incident_id if params else "",
            phase=self._phase,
            plan=self._plan,
            started_by=self._starter.actor if self._starter else params.started_by if params else "",
            approved_by=self._approved_by,
            paused_venues=tuple(sorted(self._paused)),
            paused_all=self._paused_all,
            stopped_venues=tuple(sorted(self._stopped)),
            cancel_reason=self._cancel_reason,
            venues_done=tuple(self._venues_done),
        )


def _refused(reason: str) -> ApplicationError:
    """An update refused after it was accepted: the commander sees ``reason`` as one line."""
    return ApplicationError(reason, type="ActionRefused", non_retryable=True)


def _reason(error: ActivityError) -> str:
    cause = error.cause
    return cause.message if isinstance(cause, FailureError) and cause.message else str(cause or error)


def _no_longer_waits(venue: str) -> str:
    return f"venue {venue!r} has finished: it no longer waits for the exchange, nothing to confirm"
