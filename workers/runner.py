"""Running keyrevoke's workers for a chosen set of task queues in one process.

``control`` runs the workflows and the ledger activities; each venue name runs that venue's batch
activities on its own task queue, paced by the Temporal server for every worker of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.batches import BatchActivities, BatchLimits
from activities.control import ControlActivities
from activities.escalation import EscalationActivities, EscalationDesk, PacketSettings
from activities.ledger_writer import GroupCommitWriter
from activities.operators import OperatorActivities
from activities.owner_notices import NoticeSettings, OwnerNoticeActivities, OwnerNoticeDesk
from activities.platform_hook import FileHook, HttpHook, PlatformHook
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import ADAPTERS, build_adapter, load_master_credentials
from keyrevoke.errors import ConfigurationError
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.mail import mailer_from_settings
from keyrevoke.observability.metrics import Observability, for_process
from keyrevoke.observability.tracing import flush_traces
from keyrevoke.settings import Settings
from keyrevoke.signing import load_signing_key
from workers.health import HealthServer
from workflows.incident import IncidentWorkflow
from workflows.venue import VenueWorkflow

log = logging.getLogger(__name__)

CONTROL = "control"


def platform_hook(settings: Settings) -> PlatformHook:
    """The webhook when a URL is set, else the file sink of the embedded set-up.

    Outside the embedded set-up the URL is required: a file sink inside a pod would take the freeze and
    unfreeze requests and tell the platform nothing.
    """
    if settings.hook_url:
        secret = settings.hook_secret.get_secret_value() if settings.hook_secret else None
        return HttpHook(settings.hook_url, secret, settings.venue_request_timeout_seconds)
    if not settings.embedded:
        raise ConfigurationError(
            "no platform hook: set KEYREVOKE_HOOK_URL (KEYREVOKE_EMBEDDED=false never falls back to the file sink)"
        )
    return FileHook(settings.resolved_hook_file())


def packet_settings(settings: Settings) -> PacketSettings:
    """What escalation packets take from the settings."""
    return PacketSettings(
        platform_name=settings.platform_name,
        platform_contact=settings.platform_contact,
        broker_ids={venue.lower(): broker for venue, broker in settings.broker_ids.items()},
        egress_ips=tuple(settings.egress_ips),
        contacts_file=settings.resolved_contacts_file(),
        fallback_key_file=settings.packet_fallback_key_file,
        keys_per_part=settings.packet_keys_per_part,
        folder=settings.resolved_escalation_dir(),
    )
def setup_warnings(settings: Settings, queues: Sequence[str]) -> list[str]:
    """One line per venue among ``queues`` whose keys would end misconfigured with these settings.

    A venue without URL (real exchanges not allowed), or without master credentials when it has
    revoke methods that need them. Nothing is sent anywhere to find out.
    """
    masters = load_master_credentials(settings.resolved_masters_file())
    lines = []
    for venue in queues:
        adapter = ADAPTERS.get(venue)
        if adapter is None:
            continue
        if venue not in settings.venue_urls and not settings.allow_real_exchanges:
            lines.append(
                f"warning: {venue}: no venue URL in KEYREVOKE_VENUE_URLS and real exchanges are not allowed "
                "(KEYREVOKE_ALLOW_REAL_EXCHANGES): its keys will end misconfigured"
            )
        needing = sorted(adapter.master_methods)
        if needing and venue not in masters:
            lines.append(
                f"warning: {venue}: no master credentials in {settings.resolved_masters_file()} for method(s) "
                f"{', '.join(needing)}: keys revoked that way will end misconfigured"
            )
    return lines


def parse_queues(text: str) -> list[str]:
    """``control,binance`` -> ``["control", "binance"]``; ``all`` means control and every venue."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigurationError("--queues: name at least one queue (control, a venue, or all)")
    if "all" in names:
        return [CONTROL, *ADAPTERS]
    unknown = [name for name in names if name != CONTROL and name not in ADAPTERS]
    if unknown:
        known = ", ".join([CONTROL, *ADAPTERS])
        raise ConfigurationError(f"--queues: unknown queue(s) {', '.join(unknown)} (known: {known}, all)")
    return list(dict.fromkeys(names))


@contextlib.asynccontextmanager
async def workers_for(
    client: Client,
    settings: Settings,
    queues: Sequence[str],
    ledger: Ledger | None = None,
    observability: Observability | None = None,
) -> AsyncIterator[list[Worker]]:
    """Build (not start) the workers for ``queues``, with the clients and settings they need.

    With ``observability`` the batches report to its metrics, and a control worker adds the ledger's
    keys by state to them.
    """
    own_ledger = ledger is None
    ledger = ledger or ledger_from_settings(settings)
    unwatch = observability.watch_ledger(ledger) if observability and CONTROL in queues else None
    exchanges = ExchangeFactory(
        settings.venue_urls,
        settings.venue_request_timeout_seconds,
        allow_real_exchanges=settings.allow_real_exchanges,
    )
    hook = platform_hook(settings)
    mailer = mailer_from_settings(settings)
    writer = GroupCommitWriter(ledger)
    try:
        built: list[Worker] = []
        if CONTROL in queues:
            control = ControlActivities(ledger)
            operators = OperatorActivities(settings)
            notices = OwnerNoticeActivities(
                OwnerNoticeDesk(
                    ledger,
                    hook,
                    mailer,
                    NoticeSettings(
                        settings.platform_name, {v.lower(): u for v, u in settings.api_management_urls.items()}
                    ),
                )
            )
            built.append(
                Worker(
                    client,
                    task_queue=settings.control_queue,
                    workflows=[IncidentWorkflow, VenueWorkflow],
                    activities=[
                        notices.notify_owners,
                        control.plan_incident,
                        control.load_page,
                        control.load_state_page,
                        control.record_event,
                        control.summarize_incident,
                        control.check_confirmation,
                        operators.verify_action,
                        control.give_up_keys,
                    ],
                    graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
                )
            )
        venues = [q for q in queues if q != CONTROL]
        if venues:
            masters = load_master_credentials(settings.resolved_masters_file())
            adapters = {venue: build_adapter(venue, exchanges, masters) for venue in venues}
            batches = BatchActivities(
                ledger,
                adapters,
                hook,
                BatchLimits(
                    settings.venue_requests_per_second,
                    settings.keys_in_flight_per_batch,
                    settings.request_attempts,
                ),
                telemetry=observability.serve_venues(venues, settings) if observability else None,
                writer=writer,
            )
            escalation = EscalationActivities(
                EscalationDesk(ledger, packet_settings(settings), load_signing_key(settings), mailer)
            )
            for venue in venues:
                built.append(
                    Worker(
                        client,
                        task_queue=settings.venue_queue(venue),
                        activities=[
                            batches.prepare_batch,
                            batches.revoke_batch,
                            batches.verify_batch,
                            batches.compensate_batch,
                            escalation.write_escalation_packet,
                            batches.probe_escalated_batch,
                            batches.accept_exchange_confirmation,
                        ],
                        max_task_queue_activities_per_second=settings.venue_activities_per_second,
                        # Heartbeats carry the keys a batch has finished: send them often enough that
                        # a retry after a crash skips nearly all of them.
                        max_heartbeat_throttle_interval=timedelta(seconds=1),
                        max_concurrent_activities=settings.batches_in_flight * 2,
                        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
                    )
                )
        yield built
    finally:
        if unwatch:
            unwatch()
        await exchanges.close()
        if isinstance(hook, HttpHook | FileHook):
            await hook.close()
        # Transitions still queued (of activities cancelled at shutdown) go in before the ledger closes.
        await writer.close()
        if own_ledger:
            ledger.close()


def process_observability(settings: Settings) -> Observability | None:
    """The process's metrics, if the settings serve or push them (a health port or an OTLP endpoint)."""
    if settings.worker_http_port or settings.otel_exporter_otlp_endpoint:
        return for_process(settings)
    return None


async def run_workers(
    client: Client,
    settings: Settings,
    queues: Sequence[str],
    stop: asyncio.Event,
    ledger: Ledger | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the workers for ``queues`` until ``stop`` is set, then shut them down gracefully.

    First it warns on stderr, one line each, of venues whose keys its settings would leave misconfigured.

    Their metrics are served on the health port's /metrics and pushed by OTLP, as the settings say.
    """
    for line in setup_warnings(settings, queues):
        print(line, file=sys.stderr, flush=True)
    observability = process_observability(settings)
    if observability:
        # The Temporal SDK reports its own metrics through the runtime its client connected on.
        client = await observability.on_temporal_runtime(client)
    health = None
    if settings.worker_http_port:
        health = HealthServer(
            settings.worker_http_port,
            settings.worker_http_host,
            metrics=observability.exposition if observability else None,
        )
    async with (
        observability.running() if observability else contextlib.nullcontext(),
        workers_for(client, settings, queues, ledger, observability) as built,
    ):
        if health:
            await health.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for worker in built:
                    await stack.enter_async_context(worker)
                if health:
                    health.ready = True
                if ready:
                    ready.set()
                log.info("workers running for %s", ", ".join(queues))
                await stop.wait()
                if health:
                    health.ready = False
        finally:
            if health:
                await health.stop()
            # Spans of the last activities, before the process exits without the interpreter's teardown.
            await asyncio.to_thread(flush_traces)
