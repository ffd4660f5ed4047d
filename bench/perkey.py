"""The worker process of the workflow-per-key baseline: ``python -m bench.perkey WINDOW``.

Settings come from ``KEYREVOKE_*`` variables, as for ``keyrevoke worker``. It runs the baseline's
workflows and keyrevoke's ``load_page`` on the control queue, and keyrevoke's own batch activities
(same ledger, adapters, platform hook and pacing) on each venue queue, allowing ``WINDOW`` activities
at once per venue so that the per-key children are not starved by keyrevoke's batch-sized slot count.
That is why it builds its workers here rather than through workers/runner.py ``workers_for``, whose venue
workers take ``batches_in_flight`` x 2 activities at once and whose control worker runs keyrevoke's workflows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

from temporalio.worker import Worker

from activities.batches import BatchActivities, BatchLimits
from activities.control import ControlActivities
from activities.platform_hook import FileHook, HttpHook
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import build_adapter, load_master_credentials
from bench.perkey_workflows import FanOutWorkflow, KeyWorkflow
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.settings import Settings
from keyrevoke.temporal_client import connect
from workers.runner import platform_hook


async def serve(window: int) -> None:
    settings = Settings()
    client = await connect(settings)
    ledger = ledger_from_settings(settings)
    exchanges = ExchangeFactory(settings.venue_urls, settings.venue_request_timeout_seconds)
    venues = sorted(settings.venue_urls)
    masters = load_master_credentials(settings.resolved_masters_file())
    hook = platform_hook(settings)
    batches = BatchActivities(
        ledger,
        {venue: build_adapter(venue, exchanges, masters) for venue in venues},
        hook,
        BatchLimits(settings.venue_requests_per_second, settings.keys_in_flight_per_batch, settings.request_attempts),
    )
    control = ControlActivities(ledger)
    workers = [
        Worker(
            client,
            task_queue=settings.control_queue,
            workflows=[FanOutWorkflow, KeyWorkflow],
            activities=[control.load_page],
        )
    ]
    for venue in venues:
        workers.append(
            Worker(
                client,
                task_queue=settings.venue_queue(venue),
                activities=[batches.prepare_batch, batches.revoke_batch, batches.verify_batch],
                max_task_queue_activities_per_second=settings.venue_activities_per_second,
                max_heartbeat_throttle_interval=timedelta(seconds=1),
                max_concurrent_activities=window,
            )
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    await stop.wait()
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    await asyncio.gather(*tasks, return_exceptions=True)
    # as keyrevoke's worker shuts down (workers/runner.py ``workers_for``): the hook's open file or session,
    # then the ledger writes still queued, before the ledger closes
    await exchanges.close()
    if isinstance(hook, HttpHook | FileHook):
        await hook.close()
    await batches.writer.close()
    ledger.close()


def main() -> None:
    asyncio.run(serve(int(sys.argv[1])))
    sys.stdout.flush()
    # The SDK's runtime can abort the interpreter at exit (sdk-python issue 300): leave without teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
