"""Starting and following incidents: what the CLI verbs and the demo share."""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.live import Live
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from commander.progress import view_lines, view_table
from commander.situation import IncidentView, describe_workflow, incident_view, queue_service, status_name
from keyrevoke.errors import InputError
from keyrevoke.ledger import Ledger
from keyrevoke.models import (
    START_WITH_APPROVAL,
    ConfirmRequest,
    ControlRequest,
    IncidentInput,
    IncidentState,
    IncidentSummary,
    Operator,
    SignedAction,
    VerifyActionRequest,
    keys_digest,
)
from keyrevoke.operators import action_message, operators_for, sign_action, verify_action
from keyrevoke.safe_text import terminal_text
from keyrevoke.settings import Settings
from keyrevoke.text_lines import text_lines
from keyrevoke.venues import SUPPORTED_VENUES
from workflows.incident import IncidentWorkflow, incident_workflow_id


def operator_identity(settings: Settings) -> str:
    """The name this commander claims (shown only: the signing key decides who acts)."""
    if settings.operator:
        return settings.operator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def new_incident_id() -> str:
    return "inc-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")[:-3]


def read_owners(path: Path, what: str = "owners file") -> list[str]:
    """One owner (or key id) per line; blank lines and lines starting with # are skipped.

    A line that is not text (binary, Latin-1) is refused with the file and its line.
    """
    owners = []
    for line in text_lines(path, what, max_line_bytes=1024):
        number = line.number
        if line.error:
            raise InputError(f"{path}:{number}: {line.error}")
        owner = line.text.strip()
        if not owner or owner.startswith("#"):
            continue
        if any(ch.isspace() or not ch.isprintable() for ch in owner) or len(owner) > 256:
            raise InputError(f"{path}:{number}: one entry per line, one token of at most 256 printable characters")
        owners.append(owner)
    if not owners:
        raise InputError(f"{path}: lists nothing (one entry per line)")
    return owners


@dataclass(frozen=True)
class StartOutcome:
    incident_id: str
    workflow_id: str
    new: bool  # False: the incident already existed and this start joined it


def start_fields(venues: list[str], require_approval: bool) -> tuple[str, str]:
    """What a signed start names besides the incident and its owners: its venues, and whether it waits."""
    return ",".join(sorted({v.lower() for v in venues})), START_WITH_APPROVAL if require_approval else ""


def start_message(incident_id: str, venues: list[str], owners: list[str], require_approval: bool) -> str:
    """The message an operator signs (``ssh-keygen -Y sign -n keyrevoke``) to start this incident."""
    venue, reason = start_fields(venues, require_approval)
    return action_message(incident_id, "start", venue, reason, owners)


async def start_incident(
    client: Client,
    ledger: Ledger,
    settings: Settings,
    incident_id: str,
    venues: list[str],
    owners: list[str],
    require_approval: bool = False,
    signed: SignedAction | None = None,
    include_handled: bool = True,
) -> StartOutcome:
    """Record the incident's scope and start (or join) its workflow.

    The start is signed with the CLI's operator key, or ``signed`` comes from ``ssh-keygen -Y sign``;
    it is verified here against the registered operators before anything is recorded (and again by
    the workflow). With ``require_approval`` the incident plans, then waits for another operator's
    ``approve``. Without ``include_handled`` the keys confirmed dead or closed in an earlier incident
    stay out of its plan.
    """
    unknown = [v for v in venues if v.lower() not in SUPPORTED_VENUES]
    if unknown:
        raise InputError(f"--venue: unknown venue(s) {', '.join(unknown)} (known: {', '.join(SUPPORTED_VENUES)})")
    venue_field, _ = start_fields(venues, require_approval)
    signed, starter = await asyncio.to_thread(
        signed_start, settings, incident_id, venues, owners, require_approval, signed
    )
    _, created = await asyncio.to_thread(
        ledger.create_incident, incident_id, venues, owners, starter.actor, not include_handled
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
                started_by=starter.actor,
                require_approval=require_approval,
                escalation_wait_seconds=settings.escalation_wait_seconds,
                escalation_probe_interval_seconds=settings.escalation_probe_interval_seconds,
                first_batch_size=settings.first_batch_size,
                start_signed=signed,
                scope_venues=venue_field,
                scope_owners=len(set(owners)),
                scope_owners_sha256=keys_digest(owners),
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
        await asyncio.to_thread(ledger.append_event, incident_id, starter.actor, "incident.start.joined")
    return StartOutcome(incident_id, workflow_id, created)


CONTROL_ACTIONS = ("pause", "resume", "cancel", "narrow", "approve", "confirm")

#: How long a command waits for the incident's workflow to answer before it says why it does not.
CONTROL_WAIT_SECONDS = 10.0


class NoWorkerAnswered(Exception):
    """The request is recorded in the ledger, but no worker acted on it; the message says what is missing."""


def sign_request(
    settings: Settings, incident_id: str, action: str, request: ControlRequest | ConfirmRequest
) -> ControlRequest | ConfirmRequest:
    """``request`` signed with the CLI's operator key, unless it carries a signature already."""
    if request.signed is not None:
        return request
    reason = request.reason if isinstance(request, ControlRequest) else ""
    key_ids = request.key_ids if isinstance(request, ConfirmRequest) else ()
    return replace(request, signed=sign_action(settings, incident_id, action, request.venue, reason, key_ids))


def signed_start(
    settings: Settings,
    incident_id: str,
    venues: list[str],
    owners: list[str],
    require_approval: bool,
    signed: SignedAction | None = None,
) -> tuple[SignedAction, Operator]:
    """The start signed (with the CLI's key unless ``signed`` is given) and the registered operator who
    signed it, checked here so that a refused start records nothing."""
    venue_field, reason = start_fields(venues, require_approval)
    if signed is None:
        signed = sign_action(settings, incident_id, "start", venue_field, reason, owners)
    request = VerifyActionRequest.of(incident_id, "start", signed, venue_field, reason, owners)
    age = timedelta(seconds=settings.operator_signature_max_age_seconds)
    return signed, verify_action(operators_for(settings), request, age)


def verified_operator(
    settings: Settings, incident_id: str, action: str, request: ControlRequest | ConfirmRequest
) -> Operator:
    """The registered operator whose signature ``request`` carries, checked here as the worker will
    check it, so that an action the workflow would refuse is refused before it is put on record."""
    reason = request.reason if isinstance(request, ControlRequest) else ""
    key_ids = request.key_ids if isinstance(request, ConfirmRequest) else ()
    checked = VerifyActionRequest.of(incident_id, action, request.signed, request.venue, reason, key_ids)
    age = timedelta(seconds=settings.operator_signature_max_age_seconds)
    try:
        return verify_action(operators_for(settings), checked, age)
    except InputError as error:
        raise InputError(f"incident {incident_id}: {action} refused: {error}") from None


async def control(
    client: Client,
    settings: Settings,
    incident_id: str,
    action: str,
    request: ControlRequest | ConfirmRequest,
) -> str:
    """Send one of the commander's updates, signed; a refusal comes back as an ``InputError`` with its reason.

    A request without a signature is signed here with the CLI's operator key (``operator_key_file``,
    or the embedded set-up's key); one signed by ``ssh-keygen -Y sign`` carries it already.
    """
    if action not in CONTROL_ACTIONS:
        raise InputError(f"unknown action {action!r}")
    request = await asyncio.to_thread(sign_request, settings, incident_id, action, request)
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


async def control_on_record(
    client: Client,
    ledger: Ledger,
    settings: Settings,
    incident_id: str,
    action: str,
    request: ControlRequest | ConfirmRequest,
    wait_seconds: float = CONTROL_WAIT_SECONDS,
) -> str:
    """``control`` as the CLI sends it: on record first, and never silent when no worker acts.

    The request is written to the incident's event log (who, what, why) before it is sent, so it is on
    record even when no worker runs to act on it. If no worker serves the control queue, or none
    answers within ``wait_seconds``, ``NoWorkerAnswered`` says so instead of waiting in silence.
    """
    if action not in CONTROL_ACTIONS:
        raise InputError(f"unknown action {action!r}")
    await asyncio.to_thread(ledger.require_incident, incident_id)
    status = status_name(await describe_workflow(client, incident_workflow_id(incident_id)))
    if status != "running":
        raise InputError(
            f"incident {incident_id} is not running (workflow {status}): nothing to {action}; "
            f"see `keyrevoke incident status {incident_id}`"
        )
    request = await asyncio.to_thread(sign_request, settings, incident_id, action, request)
    operator = await asyncio.to_thread(verified_operator, settings, incident_id, action, request)
    detail = request.reason if isinstance(request, ControlRequest) else ""
    await asyncio.to_thread(
        ledger.append_event, incident_id, operator.actor, f"incident.{action}.requested", request.venue, "", detail
    )
    service = await queue_service(client, settings.control_queue, "workflow")
    if not service.served:
        raise NoWorkerAnswered(
            f"{action} of incident {incident_id} is recorded in the ledger, but no worker is serving queue "
            f"{service.queue}, so nothing acts on it: start `keyrevoke worker`, then run this command again"
        )
    try:
        return await asyncio.wait_for(control(client, settings, incident_id, action, request), wait_seconds)
    except TimeoutError:
        raise NoWorkerAnswered(
            f"{action} of incident {incident_id} is recorded in the ledger, but no worker answered within "
            f"{wait_seconds:.0f} s (queue {service.queue}): see `keyrevoke incident status {incident_id}`, "
            "then run this command again"
        ) from None


async def incident_state(client: Client, incident_id: str) -> IncidentState | None:
    """The incident workflow's own view (phase, plan, control state), if it can be asked."""
    try:
        state: IncidentState = await client.get_workflow_handle(incident_workflow_id(incident_id)).query(
            IncidentWorkflow.state
        )
    except (RPCError, WorkflowQueryFailedError):
        return None
    return state


async def follow(
    client: Client, ledger: Ledger, settings: Settings, incident_id: str, interval: float = 1.0
) -> IncidentView:
    """Show the incident until its workflow closes (or is not found); returns the last view.

    On a terminal the table refreshes in place; elsewhere a block of plain lines is printed each
    time something other than the clock changed.
    """
    console = Console()
    view = await incident_view(client, ledger, settings, incident_id)
    if console.is_terminal:
        with Live(view_table(view), console=console, refresh_per_second=4) as live:
            while view.workflow_status == "running":
                await asyncio.sleep(interval)
                view = await incident_view(client, ledger, settings, incident_id)
                live.update(view_table(view))
        return view
    last: list[str] = []
    while True:
        lines = view_lines(view, with_times=False)
        if lines != last:
            # Venue answers and inventory text are shown, never obeyed by the terminal.
            print("\n".join(terminal_text(line) for line in lines), flush=True)
            last = lines
        if view.workflow_status != "running":
            return view
        await asyncio.sleep(interval)
        view = await incident_view(client, ledger, settings, incident_id)


async def recorded_chain_head(client: Client, incident_id: str) -> tuple[int, str]:
    """The event chain's length and head that the finished incident workflow returned."""
    status = status_name(await describe_workflow(client, incident_workflow_id(incident_id)))
    if status != "completed":
        raise InputError(f"incident {incident_id}: its workflow is {status}: no chain head is recorded in Temporal yet")
    handle = client.get_workflow_handle(incident_workflow_id(incident_id), result_type=IncidentSummary)
    summary = await handle.result()
    if not summary.chain_length:
        raise InputError(
            f"incident {incident_id}: its workflow's result records no chain head (an older version ran it)"
        )
    return summary.chain_length, summary.chain_head
