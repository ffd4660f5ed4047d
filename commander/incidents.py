"""Starting and following incidents: what the CLI verbs and the demo share."""

from __future__ import annotations

import asyncio
import getpass
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from commander.progress import progress_line, progress_table
from keyrevoke.errors import InputError
from keyrevoke.ledger import Ledger
from keyrevoke.models import ConfirmRequest, ControlRequest, IncidentInput, IncidentState
from keyrevoke.settings import Settings
from keyrevoke.venues import SUPPORTED_VENUES
from workflows.incident import IncidentWorkflow, incident_workflow_id


def operator_identity(settings: Settings) -> str:
    """Who is acting: the configured operator, else the OS user."""
    if settings.operator:
        return settings.operator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def new_incident_id() -> str:
    return "inc-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")[:-3]


def read_owners(path: Path) -> list[str]:
    """One owner per line; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise InputError(f"{path}: no such owners file")
    owners = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        owner = line.strip()
        if not owner or owner.startswith("#"):
            continue
        if any(ch.isspace() for ch in owner) or len(owner) > 256:
            raise InputError(f"{path}:{number}: an owner is one token of at most 256 characters")
        owners.append(owner)
    if not owners:
        raise InputError(f"{path}: lists no owner")
    return owners


@dataclass(frozen=True)
class StartOutcome:
    incident_id: str
    workflow_id: str
    new: bool  # False: the incident already existed and this start joined it


async def start_incident(
    client: Client,
    ledger: Ledger,
    settings: Settings,
    incident_id: str,
    venues: list[str],
    owners: list[str],
    require_approval: bool = False,
) -> StartOutcome:
    """Record the incident's scope and start (or join) its workflow.

    With ``require_approval`` the incident plans, then waits for another person's ``approve``.
    """
    unknown = [v for v in venues if v.lower() not in SUPPORTED_VENUES]
    if unknown:
        raise InputError(f"--venue: unknown venue(s) {', '.join(unknown)} (known: {', '.join(SUPPORTED_VENUES)})")
    _, created = await asyncio.to_thread(
        ledger.create_incident, incident_id, venues, owners, operator_identity(settings)
    )
    workflow_id = incident_workflow_id(incident_id)
    try:
        await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(
                incident_id=incident_id,
                task_queue_prefix=settings.task_queue_prefix,
                batch_size=settings.batch_size,
                batches_in_flight=settings.batches_in_flight,
                verify_interval_seconds=settings.verify_interval_seconds,
                verify_deadline_seconds=settings.verify_deadline_seconds,
                started_by=operator_identity(settings),
                require_approval=require_approval,
                escalation_wait_seconds=settings.escalation_wait_seconds,
                escalation_probe_interval_seconds=settings.escalation_probe_interval_seconds,
                first_batch_size=settings.first_batch_size,
                batch_attempts=settings.batch_attempts,
            ),
            id=workflow_id,
            task_queue=settings.control_queue,
            # A second start of a running incident joins it; of a finished one is refused.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        raise InputError(
            f"incident {incident_id} has already run to its end; see `keyrevoke incident status {incident_id}`"
        ) from None
    if not created:
        await asyncio.to_thread(ledger.append_event, incident_id, operator_identity(settings), "incident.start.joined")
    return StartOutcome(incident_id, workflow_id, created)


CONTROL_ACTIONS = ("pause", "resume", "cancel", "narrow", "approve", "confirm")


async def control(client: Client, incident_id: str, action: str, request: ControlRequest | ConfirmRequest) -> str:
    """Send one of the commander's updates; a refusal comes back as an ``InputError`` with its reason."""
    if action not in CONTROL_ACTIONS:
        raise InputError(f"unknown action {action!r}")
    handle = client.get_workflow_handle(incident_workflow_id(incident_id))
    try:
        answer: str = await handle.execute_update(action, request, result_type=str)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = getattr(cause, "message", None) or str(cause or error)
        raise InputError(f"incident {incident_id}: {action} refused: {reason}") from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise InputError(f"incident {incident_id} is not running (finished, or never started)") from None
        raise
    return answer


async def incident_state(client: Client, incident_id: str) -> IncidentState | None:
    """The incident workflow's own view (phase, plan, control state), if it can be asked."""
    try:
        state: IncidentState = await client.get_workflow_handle(incident_workflow_id(incident_id)).query(
            IncidentWorkflow.state
        )
    except (RPCError, WorkflowQueryFailedError):
        return None
    return state


async def describe(client: Client, incident_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(incident_workflow_id(incident_id)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def status_name(description: WorkflowExecutionDescription | None) -> str:
    if description is None or description.status is None:
        return "not found"
    return description.status.name.lower()


async def follow(client: Client, ledger: Ledger, incident_id: str, interval: float = 1.0) -> str:
    """Show live progress until the incident workflow closes; returns its final status name."""
    console = Console()
    live = console.is_terminal

    async def snapshot() -> tuple[dict[str, dict[str, int]], str]:
        counts = await asyncio.to_thread(ledger.counts, incident_id)
        return counts, status_name(await describe(client, incident_id))

    counts, status = await snapshot()
    if live:
        with Live(progress_table(incident_id, counts, status), console=console, refresh_per_second=4) as view:
            while status == "running":
                await asyncio.sleep(interval)
                counts, status = await snapshot()
                view.update(progress_table(incident_id, counts, status))
    else:
        last = ""
        while True:
            line = progress_line(counts)
            if line != last:
                print(line, file=sys.stderr, flush=True)
                last = line
            if status != "running":
                break
            await asyncio.sleep(interval)
            counts, status = await snapshot()
    return status
