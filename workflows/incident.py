"""The incident workflow: one per incident, the commander's handle on a mass revoke.

Its id derives from the incident id, so a second start of the same incident joins the first instead
of doubling the work. It plans the scope through an activity (the ledger does the heavy lifting),
starts one venue workflow per venue, waits for them and returns the summary counted from the ledger.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from keyrevoke.models import (
        IncidentInput,
        IncidentPlan,
        IncidentSummary,
        VenueInput,
        control_queue,
        venue_queue,
    )
    from workflows import options
    from workflows.venue import VenueWorkflow


def incident_workflow_id(incident_id: str) -> str:
    """The workflow id of an incident: one running incident workflow per incident id."""
    return f"keyrevoke-incident-{incident_id}"


def venue_workflow_id(incident_id: str, venue: str) -> str:
    return f"keyrevoke-incident-{incident_id}-venue-{venue}"


@workflow.defn
class IncidentWorkflow:
    """Plan an incident, fan it out to one venue workflow per venue, and summarize the outcome."""

    def __init__(self) -> None:
        self._plan: IncidentPlan | None = None
        self._venues_done: list[str] = []

    @workflow.run
    async def run(self, params: IncidentInput) -> IncidentSummary:
        self._plan = await workflow.execute_activity(
            options.PLAN_INCIDENT,
            params.incident_id,
            result_type=IncidentPlan,
            task_queue=control_queue(params.task_queue_prefix),
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        await asyncio.gather(*(self._run_venue(params, venue.venue) for venue in self._plan.venues if venue.keys > 0))
        summary: IncidentSummary = await workflow.execute_activity(
            options.SUMMARIZE_INCIDENT,
            params.incident_id,
            result_type=IncidentSummary,
            task_queue=control_queue(params.task_queue_prefix),
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        return summary

    async def _run_venue(self, params: IncidentInput, venue: str) -> None:
        await workflow.execute_child_workflow(
            VenueWorkflow.run,
            VenueInput(
                incident_id=params.incident_id,
                venue=venue,
                task_queue=venue_queue(params.task_queue_prefix, venue),
                control_queue=control_queue(params.task_queue_prefix),
                batch_size=params.batch_size,
                batches_in_flight=params.batches_in_flight,
                verify_interval_seconds=params.verify_interval_seconds,
                verify_deadline_seconds=params.verify_deadline_seconds,
            ),
            id=venue_workflow_id(params.incident_id, venue),
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        self._venues_done.append(venue)

    @workflow.query
    def plan(self) -> IncidentPlan | None:
        """Keys per venue once planning is done (None before)."""
        return self._plan

    @workflow.query
    def venues_done(self) -> list[str]:
        return list(self._venues_done)
