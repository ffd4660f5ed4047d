"""What is true of an incident right now: the ledger's counts joined with what Temporal knows.

The ledger says where every key stands; Temporal says whether the workflow runs and in which phase,
whether any worker serves each task queue, and which step of a venue fails and why. A view that
showed only the first would look the same for a healthy run and for one that no worker serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from commander.exit_codes import ENDED_STATUSES, incident_exit_code
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.overview import VenuePace, venue_pace
from keyrevoke.models import IncidentState, VenueProgress
from keyrevoke.settings import Settings
from keyrevoke.states import DISPLAY_ORDER, NEXT_STEP, KeyState, Measures
from workflows.incident import IncidentWorkflow, incident_workflow_id, venue_workflow_id
from workflows.venue import VenueWorkflow

#: A worker polls a queue again at the latest when its long poll (about a minute) ends: a queue whose
#: last poll is older than this has no worker serving it.
POLLER_FRESH = timedelta(seconds=90)
#: How long a query may wait for a worker to answer before the view goes on without it.
QUERY_TIMEOUT = timedelta(seconds=3)


@dataclass(frozen=True)
class QueueService:
    """Whether any worker polled a task queue lately."""

    queue: str
    pollers: int  # workers that polled within POLLER_FRESH
    last_poll: datetime | None

    @property
    def served(self) -> bool:
        return self.pollers > 0


@dataclass(frozen=True)
class FailingStep:
    """A venue's activity that failed and waits for its next attempt, from the workflow's pending activities."""

    activity: str
    attempt: int
    error_type: str
    message: str

    def text(self) -> str:
        return f"{self.error_type}: {self.message}, attempt {self.attempt}"


@dataclass(frozen=True)
class VenueView:
    venue: str
    counts: dict[str, int]
    measures: Measures
    phase: str  # working | paused | stopping | taken out | awaiting exchange | done | ended | no worker | unknown
    queue: QueueService | None
    failing: FailingStep | None
    last_change: datetime | None
    keys_per_second: float
    awaiting_exchange: int = 0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until keyrevoke's work on this venue ends at the recent pace; None without a pace."""
        left = self.measures.total - self.measures.finished
        if left == 0:
            return 0.0
        return left / self.keys_per_second if self.keys_per_second > 0 else None


@dataclass(frozen=True)
class IncidentView:
    """One incident as the commander must see it; every screen, ``--json`` and exit code comes from here."""

    incident_id: str
    workflow_status: str  # running, completed, failed, canceled, terminated, timed_out, not found
    phase: str  # the workflow's own phase when it answers, else the workflow status
    venues: list[VenueView]
    control_queue: QueueService | None
    paused: tuple[str, ...] = ()
    taken_out: tuple[str, ...] = ()
    cancel_reason: str = ""
    approved_by: str = ""
    notes: tuple[str, ...] = field(default=())  # why it does not move, what is missing

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return {v.venue: v.counts for v in self.venues}

    @property
    def measures(self) -> Measures:
        totals: dict[str, int] = {}
        for venue in self.venues:
            for state, n in venue.counts.items():
                totals[state] = totals.get(state, 0) + n
        return Measures.from_counts(totals)

    @property
    def state_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for venue in self.venues:
            for state, n in venue.counts.items():
                totals[state] = totals.get(state, 0) + n
        return {s.value: totals[s.value] for s in DISPLAY_ORDER if totals.get(s.value)}

    @property
    def ended(self) -> bool:
        return self.workflow_status in ENDED_STATUSES

    @property
    def exit_code(self) -> int:
        return incident_exit_code(self.workflow_status, self.measures)

    def to_json(self) -> dict[str, Any]:
        m = self.measures
        return {
            "incident_id": self.incident_id,
            "workflow": self.workflow_status,
            "phase": self.phase,
            "total": m.total,
            "finished": m.finished,
            "finished_ratio": round(m.finished_ratio, 4),
            "handled": m.handled,
            "may_still_work": m.may_still_work,
            "safe": m.safe,
            "exit_code": self.exit_code,
            "paused": list(self.paused),
            "taken_out": list(self.taken_out),
            "cancel_reason": self.cancel_reason,
            "approved_by": self.approved_by,
            "control_queue": _queue_json(self.control_queue),
            "venues": {
                v.venue: {
                    "states": v.counts,
                    "total": v.measures.total,
                    "finished_ratio": round(v.measures.finished_ratio, 4),
                    "may_still_work": v.measures.may_still_work,
                    "phase": v.phase,
                    "queue": _queue_json(v.queue),
                    "failing": None
                    if v.failing is None
                    else {
                        "activity": v.failing.activity,
                        "attempt": v.failing.attempt,
                        "error_type": v.failing.error_type,
                        "message": v.failing.message,
                    },
                    "last_change": v.last_change.isoformat() if v.last_change else None,
                    "keys_per_second": round(v.keys_per_second, 3),
                    "eta_seconds": None if v.eta_seconds is None else round(v.eta_seconds, 1),
                    "awaiting_exchange": v.awaiting_exchange,
                }
                for v in self.venues
            },
            "notes": list(self.notes),
        }


def _queue_json(queue: QueueService | None) -> dict[str, Any] | None:
    if queue is None:
        return None
    return {
        "name": queue.queue,
        "served": queue.served,
        "pollers": queue.pollers,
        "last_poll": queue.last_poll.isoformat() if queue.last_poll else None,
    }


async def queue_service(client: Client, queue: str, kind: str) -> QueueService:
    """The workers that polled ``queue`` (``kind`` "workflow" or "activity") within ``POLLER_FRESH``."""
    queue_type = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW if kind == "workflow" else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=queue_type
        )
    )
    now = datetime.now(UTC)
    times = [p.last_access_time.ToDatetime(UTC) for p in answer.pollers if p.HasField("last_access_time")]
    fresh = [t for t in times if now - t <= POLLER_FRESH]
    return QueueService(queue, len(fresh), max(times) if times else None)


async def describe_workflow(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def status_name(description: WorkflowExecutionDescription | None) -> str:
    if description is None or description.status is None:
        return "not found"
    return description.status.name.lower()


def failing_step(description: WorkflowExecutionDescription | None) -> FailingStep | None:
    """The pending activity whose last attempt failed (the latest attempt first), if any."""
    if description is None:
        return None
    failing = [a for a in description.raw_description.pending_activities if a.HasField("last_failure")]
    if not failing:
        return None
    worst = max(failing, key=lambda a: a.attempt)
    failure = worst.last_failure
    error_type = failure.application_failure_info.type if failure.HasField("application_failure_info") else ""
    # The activity's own message is on the failure; a timeout's is on its cause.
    message = failure.message or (failure.cause.message if failure.HasField("cause") else "")
    return FailingStep(worst.activity_type.name, worst.attempt, error_type or "error", message)


async def _query(client: Client, workflow_id: str, query: Any) -> Any:
    try:
        return await client.get_workflow_handle(workflow_id).query(query, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        return None


async def incident_view(client: Client, ledger: Ledger, settings: Settings, incident_id: str) -> IncidentView:
    """Read the ledger and ask Temporal; never waits on a worker longer than ``QUERY_TIMEOUT``."""
    counts, paces = await asyncio.gather(
        asyncio.to_thread(ledger.counts, incident_id), asyncio.to_thread(venue_pace, ledger, incident_id)
    )
    description = await describe_workflow(client, incident_workflow_id(incident_id))
    status = status_name(description)
    running = status == "running"
    control = await queue_service(client, settings.control_queue, "workflow") if running else None
    state: IncidentState | None = None
    if running and control is not None and control.served:
        state = await _query(client, incident_workflow_id(incident_id), IncidentWorkflow.state)
    planned = {v.venue for v in state.plan.venues} if state is not None and state.plan is not None else set()
    venue_names = sorted(set(counts) | planned)
    venues = await asyncio.gather(
        *(
            _venue_view(
                client, settings, incident_id, venue, counts.get(venue, {}), paces.get(venue), state, running, control
            )
            for venue in venue_names
        )
    )
    notes = _notes(incident_id, status, state, control, list(venues))
    return IncidentView(
        incident_id=incident_id,
        workflow_status=status,
        phase=state.phase if state else status,
        venues=list(venues),
        control_queue=control,
        paused=("all",) if state and state.paused_all else tuple(state.paused_venues if state else ()),
        taken_out=tuple(state.stopped_venues if state else ()),
        cancel_reason=state.cancel_reason if state else "",
        approved_by=state.approved_by if state else "",
        notes=tuple(notes),
    )


async def _venue_view(
    client: Client,
    settings: Settings,
    incident_id: str,
    venue: str,
    counts: dict[str, int],
    pace: VenuePace | None,
    state: IncidentState | None,
    running: bool,
    control: QueueService | None,
) -> VenueView:
    measures = Measures.from_counts(counts)
    queue = failing = None
    progress: VenueProgress | None = None
    if running:
        workflow_id = venue_workflow_id(incident_id, venue)
        queue, description = await asyncio.gather(
            queue_service(client, settings.venue_queue(venue), "activity"), describe_workflow(client, workflow_id)
        )
        failing = failing_step(description)
        if control is not None and control.served and status_name(description) == "running":
            progress = await _query(client, workflow_id, VenueWorkflow.progress)
    phase = _venue_phase(venue, measures, state, progress, running)
    if phase == "unknown" and control is not None and not control.served:
        phase = "no worker"
    return VenueView(
        venue=venue,
        counts={s.value: counts[s.value] for s in DISPLAY_ORDER if counts.get(s.value)}
        | {s: n for s, n in counts.items() if s not in {k.value for k in KeyState}},
        measures=measures,
        phase=phase,
        queue=queue,
        failing=failing,
        last_change=pace.last_change if pace else None,
        keys_per_second=pace.keys_per_second if pace else 0.0,
        awaiting_exchange=progress.awaiting_exchange if progress else 0,
    )


def _venue_phase(
    venue: str, measures: Measures, state: IncidentState | None, progress: VenueProgress | None, running: bool
) -> str:
    if not running:
        return "ended"
    if state is not None:
        if venue in state.venues_done:
            return "done"
        if venue in state.stopped_venues:
            return "taken out"
        if state.cancel_reason or (progress is not None and progress.stop_reason):
            return "stopping"
        if state.paused_all or venue in state.paused_venues:
            return "paused"
    if progress is not None and progress.awaiting_exchange:
        return "awaiting exchange"
    if measures.total and measures.finished == measures.total:
        return "done"
    return "working" if state is not None else "unknown"


def _notes(
    incident_id: str, status: str, state: IncidentState | None, control: QueueService | None, venues: list[VenueView]
) -> list[str]:
    """Why the incident does not move, and what is missing, one line each."""
    notes: list[str] = []
    if status == "not found":
        notes.append(
            f"the incident's workflow is not at Temporal: start it with `keyrevoke incident start --id {incident_id}`"
        )
    if control is not None and not control.served:
        notes.append(f"no worker is serving queue {control.queue}: start `keyrevoke worker`")
    if state is not None:
        if state.phase == "awaiting_approval":
            notes.append(f"waiting for approval: `keyrevoke incident approve {incident_id}` (by another person)")
        if state.cancel_reason:
            notes.append(f"cancelling: {state.cancel_reason}")
        if state.paused_all:
            notes.append(f"paused everywhere: `keyrevoke incident resume {incident_id}` releases it")
        elif state.paused_venues:
            notes.append(f"paused at {', '.join(state.paused_venues)}: `keyrevoke incident resume {incident_id}`")
    for venue in venues:
        left = venue.measures.total - venue.measures.finished
        if venue.queue is not None and not venue.queue.served and left and venue.phase not in ("taken out", "done"):
            notes.append(f"{venue.venue}: no worker is serving queue {venue.queue.queue}: start `keyrevoke worker`")
        if venue.phase == "awaiting exchange":
            notes.append(
                f"{venue.venue}: waiting for the exchange on {venue.awaiting_exchange} escalated keys: send it the "
                f"escalation packet; on its answer `keyrevoke incident confirm {incident_id} --venue {venue.venue}`"
            )
        if venue.failing is not None:
            notes.append(f"{venue.venue}: {venue.failing.activity} failing: {venue.failing.text()}")
    return notes


def summary_lines(view: IncidentView, settings: Settings) -> list[str]:
    """The last lines of every view: what the incident came to, and what the commander does next."""
    m = view.measures
    head = (
        f"incident {view.incident_id}: workflow {view.workflow_status}; {m.total} keys; "
        f"work finished {m.finished_ratio:.0%}; may still work {m.may_still_work}"
    )
    if m.total == 0 and not view.ended:
        head = f"incident {view.incident_id}: workflow {view.workflow_status}; no keys planned yet"
    totals = view.state_totals
    lines = [head]
    if view.ended and m.total == 0:
        lines.append("no key was planned in this incident: nothing was revoked")
        return lines
    if not view.ended:
        lines.append(f"still running: follow it with `keyrevoke incident status {view.incident_id} --watch`")
    for state in DISPLAY_ORDER:
        n = totals.get(state.value, 0)
        if not n or state not in NEXT_STEP:
            continue
        in_progress = state in (KeyState.PENDING, KeyState.FROZEN, KeyState.REVOKING, KeyState.REVOKED)
        if in_progress and not view.ended:
            continue  # the incident is still working on them
        step = NEXT_STEP[state].replace(" ID ", f" {view.incident_id} ")
        if in_progress:  # nothing will come back to them: waiting, as NEXT_STEP says of a running incident, is wrong
            step = (
                f"the incident ended ({view.workflow_status}) before finishing them: start a new incident "
                "(`keyrevoke incident start`); keys already dead are left out"
            )
        lines.append(f"{n} {state.value}: {step}")
        if state in (KeyState.LIVE, KeyState.UNCONFIRMED, KeyState.FAILED, KeyState.MISCONFIGURED):
            lines.append(f"  the keys: `keyrevoke incident keys {view.incident_id} --state {state.value}`")
        if state is KeyState.ESCALATED:
            lines.append(f"  packets: {settings.resolved_escalation_dir() / view.incident_id}")
    if view.ended and m.safe:
        lines.append("every key is confirmed dead or closed by a person: nothing left to do")
    return lines
