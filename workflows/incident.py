"""The incident workflow: one per incident, the commander's handle on a mass revoke.

Its id derives from the incident id, so a second start of the same incident joins the first instead
of doubling the work. It plans the scope through an activity (the ledger does the heavy lifting),
optionally waits for a second person's approval, starts one venue workflow per venue, takes the
commander's updates (pause, resume, cancel, narrow, approve), and returns the summary counted from
the ledger. Every accepted update is written to the incident's event log with the actor's name.

Control is honoured from the first moment: pause, resume, cancel and narrow are taken while the
incident is still planning, and one given while a venue workflow is being started reaches it once it
has started (patch ``control-during-start``). The same actions also come as the ``control`` signal
(action name, ``ControlRequest``): a signal waits in the history until a worker runs, where an update
needs a worker to answer it; a refused signal is written to the event log as ``incident.control.refused``.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from keyrevoke.models import (
        ConfirmRequest,
        ControlRequest,
        ExchangeConfirmation,
        IncidentEvent,
        IncidentInput,
        IncidentPlan,
        IncidentState,
        IncidentSummary,
        VenueInput,
        control_queue,
        venue_queue,
    )
    from workflows import options
    from workflows.venue import VenueWorkflow


#: Patch ids (``workflow.patched``), plain text in the history: they name code paths only.
CONTROL_DURING_START = "control-during-start"
PATCHES = (CONTROL_DURING_START,)


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

    @workflow.run
    async def run(self, params: IncidentInput) -> IncidentSummary:
        self._params = params
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

    async def _record(self, request: ControlRequest, kind: str, detail: str = "") -> None:
        if self._params is None:  # control may come before the run has read its input
            await workflow.wait_condition(lambda: self._params is not None)
        assert self._params is not None
        await workflow.execute_activity(
            options.RECORD_EVENT,
            IncidentEvent(self._params.incident_id, request.actor, kind, request.venue, detail or request.reason),
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
        return await self._pause(request)

    async def _pause(self, request: ControlRequest) -> str:
        targets = [request.venue] if request.venue else self._venues()
        if request.venue:
            self._paused.add(request.venue)
        else:
            self._paused_all = True
        await self._signal(targets, "pause")
        await self._record(request, "incident.paused")
        return f"paused {request.venue or 'every venue'}"

    @pause.validator
    def _validate_pause(self, request: ControlRequest) -> None:
        self._refuse_unless_open(request)
        if self._paused_all or (request.venue and request.venue in self._paused):
            raise ValueError(f"{request.venue or 'the incident'} is already paused")

    @workflow.update
    async def resume(self, request: ControlRequest) -> str:
        """Release a pause, at one venue or everywhere."""
        return await self._resume(request)

    async def _resume(self, request: ControlRequest) -> str:
        if request.venue:
            self._paused.discard(request.venue)
            targets = [] if self._paused_all else [request.venue]
        else:
            self._paused_all = False
            targets = [v for v in self._venues() if v not in self._paused]
        await self._signal(targets, "resume")
        await self._record(request, "incident.resumed")
        return f"resumed {request.venue or 'the incident'}"

    @resume.validator
    def _validate_resume(self, request: ControlRequest) -> None:
        self._refuse_unless_open(request)
        if request.venue and request.venue not in self._paused:
            raise ValueError(f"venue {request.venue!r} is not paused")
        if not request.venue and not self._paused_all and not self._paused:
            raise ValueError("nothing is paused")

    @workflow.update
    async def cancel(self, request: ControlRequest) -> str:
        """Stop everything: revoke nothing more, verify what was revoked, unfreeze the rest."""
        return await self._cancel(request)

    async def _cancel(self, request: ControlRequest) -> str:
        self._cancel_reason = request.reason or f"cancelled by {request.actor}"
        if self._phase in ("planning", "awaiting_approval", "running"):
            self._phase = "cancelling"
        await self._signal(self._venues(), "stop", self._cancel_reason)
        await self._record(request, "incident.cancelled", self._cancel_reason)
        return "cancelled: keys not yet revoked are handed back to the platform"

    @cancel.validator
    def _validate_cancel(self, request: ControlRequest) -> None:
        if request.venue:
            raise ValueError("cancel applies to the whole incident; to drop one venue, narrow the incident")
        self._refuse_unless_open(request)

    @workflow.update
    async def narrow(self, request: ControlRequest) -> str:
        """Take one venue out of the incident: its keys not yet revoked are handed back."""
        return await self._narrow(request)

    async def _narrow(self, request: ControlRequest) -> str:
        reason = request.reason or f"narrowed by {request.actor}"
        self._stopped[request.venue] = reason
        await self._signal([request.venue], "stop", reason)
        await self._record(request, "incident.narrowed", reason)
        return f"venue {request.venue} taken out of the incident"

    @narrow.validator
    def _validate_narrow(self, request: ControlRequest) -> None:
        if not request.venue:
            raise ValueError("narrow needs the venue to take out")
        self._refuse_unless_open(request)
        if request.venue in self._venues_done:
            raise ValueError(f"venue {request.venue!r} has already finished")

    @workflow.signal(name="control")
    async def control_signal(self, action: str, request: ControlRequest) -> None:
        """Pause, resume, cancel or narrow as a durable signal: it acts when a worker runs.

        The same checks as the update of that name; a refusal goes to the event log, as nobody waits
        for an answer.
        """
        if self._params is None:
            await workflow.wait_condition(lambda: self._params is not None)
        actions = {
            "pause": (self._validate_pause, self._pause),
            "resume": (self._validate_resume, self._resume),
            "cancel": (self._validate_cancel, self._cancel),
            "narrow": (self._validate_narrow, self._narrow),
        }
        if action not in actions:
            await self._record(
                request, "incident.control.refused", f"{action}: not an action (pause, resume, cancel, narrow)"
            )
            return
        validate, act = actions[action]
        try:
            validate(request)
        except ValueError as refused:
            await self._record(request, "incident.control.refused", f"{action}: {refused}")
            return
        await act(request)

    @workflow.update
    async def confirm(self, request: ConfirmRequest) -> str:
        """The exchange revoked the venue's escalated keys (all, or those listed) on its side."""
        child = self._children[request.venue]
        await child.signal(VenueWorkflow.exchange_confirmed, ExchangeConfirmation(request.actor, request.key_ids))
        scope = f"{len(request.key_ids)} listed keys" if request.key_ids else "every escalated key"
        await self._record(
            ControlRequest(request.actor, request.venue), "incident.exchange_confirmed", f"{scope}: verifying"
        )
        return f"{request.venue}: {scope} marked revoked by the exchange; verifying them now"

    @confirm.validator
    def _validate_confirm(self, request: ConfirmRequest) -> None:
        self._refuse_unless_open(ControlRequest(request.actor, request.venue))
        if not request.venue:
            raise ValueError("confirm needs the venue whose exchange revoked the keys")
        if request.venue not in self._children:
            raise ValueError(f"venue {request.venue!r} has not started yet")

    @workflow.update
    async def approve(self, request: ControlRequest) -> str:
        """The second person's approval of a planned incident."""
        self._approved_by = request.actor
        await self._record(request, "incident.approved")
        return f"approved by {request.actor}"

    @approve.validator
    def _validate_approve(self, request: ControlRequest) -> None:
        if self._phase != "awaiting_approval":
            raise ValueError(f"the incident is not waiting for approval (it is {self._phase})")
        if not request.actor:
            raise ValueError("the approval names no actor")
        if self._params is not None and request.actor == self._params.started_by:
            raise ValueError(f"{request.actor} started this incident: the approval must come from another person")

    @workflow.query
    def state(self) -> IncidentState:
        """Phase, plan and control state: small, whatever the number of keys."""
        params = self._params
        return IncidentState(
            incident_id=params.incident_id if params else "",
            phase=self._phase,
            plan=self._plan,
            started_by=params.started_by if params else "",
            approved_by=self._approved_by,
            paused_venues=tuple(sorted(self._paused)),
            paused_all=self._paused_all,
            stopped_venues=tuple(sorted(self._stopped)),
            cancel_reason=self._cancel_reason,
            venues_done=tuple(self._venues_done),
        )
