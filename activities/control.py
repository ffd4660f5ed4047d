"""Control activities: the ledger work of the incident and venue workflows, on the control queue."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from keyrevoke.ledger import Ledger
from keyrevoke.ledger.outreach import escalation_happened
from keyrevoke.ledger.store import Transition, utc_now
from keyrevoke.models import (
    ConfirmationCheckRequest,
    GiveUpRequest,
    IncidentEvent,
    IncidentPlan,
    IncidentSummary,
    KeyRef,
    Page,
    PageRequest,
    StatePageRequest,
    VenuePlan,
    VenueSummary,
)
from keyrevoke.states import KeyState
from workflows import options

#: How many refused keys a confirm's refusal names before it counts the rest.
NAMED_KEYS = 10
_NOT_REVOKED = (KeyState.PENDING, KeyState.FROZEN, KeyState.REVOKING)


class ControlActivities:
    """Ledger reads and writes for the workflows; the worker injects the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name=options.PLAN_INCIDENT)
    async def plan_incident(self, incident_id: str) -> IncidentPlan:
        """Put the incident's scope into it (idempotent) and count keys per venue."""
        counts = await asyncio.to_thread(self.ledger.plan_incident, incident_id)
        return IncidentPlan(incident_id, tuple(VenuePlan(venue, n) for venue, n in counts.items()))

    @activity.defn(name=options.LOAD_PAGE)
    async def load_page(self, request: PageRequest) -> Page:
        """The next page of a venue's keys after a cursor, riskiest first."""
        rows = await asyncio.to_thread(
            self.ledger.load_page, request.incident_id, request.venue, request.after_seq, request.limit
        )
        return Page(tuple(KeyRef(key_id, seq) for key_id, seq in rows))

    @activity.defn(name=options.LOAD_STATE_PAGE)
    async def load_state_page(self, request: StatePageRequest) -> Page:
        """The next page of a venue's keys in one state (say, escalated), after a cursor."""
        rows = await asyncio.to_thread(
            self.ledger.page_in_state,
            request.incident_id,
            request.venue,
            KeyState(request.state),
            request.after_seq,
            request.limit,
        )
        return Page(tuple(KeyRef(key_id, seq) for key_id, seq in rows))

    @activity.defn(name=options.RECORD_EVENT)
    async def record_event(self, event: IncidentEvent) -> None:
        """Append a commander's action to the incident's hash-chained event log."""
        await asyncio.to_thread(
            self.ledger.append_event, event.incident_id, event.actor, event.kind, event.venue, "", event.detail
        )

    @activity.defn(name=options.GIVE_UP_KEYS)
    async def give_up_keys(self, request: GiveUpRequest) -> int:
        """End keys whose step failed every attempt, alone too: failed, or unconfirmed if already revoked.

        The detail is the step and its last error, so that the commander sees why; returns how many moved.
        """
        detail = f"{request.step} failed on every attempt, the key alone too: {request.error}"
        ended = {"ended_at": utc_now(), "detail": detail}
        changes = [
            change
            for key_id in request.key_ids
            for change in (
                Transition(key_id, request.venue, KeyState.FAILED, _NOT_REVOKED, "key.failed", detail, ended),
                Transition(
                    key_id,
                    request.venue,
                    KeyState.UNCONFIRMED,
                    (KeyState.REVOKED,),
                    "key.unconfirmed",
                    f"revoked, but {detail}",
                    {**ended, "detail": f"revoked, but {detail}"},
                ),
            )
        ]
        moved = await asyncio.to_thread(self.ledger.apply, request.incident_id, changes)
        return len(moved)

    @activity.defn(name=options.SUMMARIZE_INCIDENT)
    async def summarize_incident(self, incident_id: str) -> IncidentSummary:
        counts = await asyncio.to_thread(self.ledger.counts, incident_id)
        head, length = await asyncio.to_thread(self.ledger.chain_head, incident_id)
        return IncidentSummary(incident_id, tuple(VenueSummary(v, c) for v, c in counts.items()), length, head)

    @activity.defn(name=options.CHECK_CONFIRMATION)
    async def check_confirmation(self, request: ConfirmationCheckRequest) -> int:
        """Refuse a confirm unless its venue waits for the exchange and every listed key is escalated there.

        Returns how many keys the confirm covers; a refusal is a non-retryable ``ConfirmRefused``
        error naming the keys and why, so nothing reaches the venue workflow.
        """
        return await asyncio.to_thread(self._check_confirmation, request)

    def _check_confirmation(self, request: ConfirmationCheckRequest) -> int:
        venue = request.venue
        if not escalation_happened(self.ledger, request.incident_id, venue):
            raise _refused(f"{venue} has escalated no keys to the exchange (yet): nothing to confirm")
        if not request.key_ids:
            waiting = self.ledger.page_in_state(request.incident_id, venue, KeyState.ESCALATED, 0, 1)
            if not waiting:
                raise _refused(f"{venue} has no escalated keys left: nothing to confirm")
            return 0
        states = self.ledger.incident_key_states(request.incident_id, request.key_ids)
        problems = []
        for key_id in sorted(set(request.key_ids)):
            found = states.get(key_id)
            if found is None:
                problems.append(f"{key_id} (not in this incident)")
            elif found[0] != venue:
                problems.append(f"{key_id} (a {found[0]} key)")
            elif found[1] is not KeyState.ESCALATED:
                problems.append(f"{key_id} ({found[1].value}, not escalated)")
        if problems:
            named = ", ".join(problems[:NAMED_KEYS])
            more = f" and {len(problems) - NAMED_KEYS} more" if len(problems) > NAMED_KEYS else ""
            raise _refused(
                f"{len(problems)} of {len(set(request.key_ids))} listed keys are not escalated {venue} keys "
                f"of this incident: {named}{more}"
            )
        return len(set(request.key_ids))


def _refused(message: str) -> ApplicationError:
    return ApplicationError(message, type="ConfirmRefused", non_retryable=True)
