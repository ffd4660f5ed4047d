"""The other baseline: one child workflow per key, calling keyrevoke's own batch activities per key.

``KeyWorkflow`` runs one key through prepare (freeze + baseline probe), revoke and verify, each a
batch activity of one key on the venue's task queue, with the timeouts and retry policies keyrevoke's
venue workflow uses. ``FanOutWorkflow`` reads the incident's keys in pages (keyrevoke's ``load_page``
activity) and keeps ``window`` children of each venue in flight, every venue in parallel: the same
concurrency as keyrevoke's batches_in_flight x keys_in_flight_per_batch per venue.

What differs from keyrevoke is only the unit of durable work: a workflow (and three activities) per
key instead of an activity per 25 keys.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from keyrevoke.models import BatchRequest, BatchResult, Page, PageRequest, VerifyRequest
    from workflows import options

PAGE = 200


@dataclass(frozen=True)
class KeyInput:
    incident_id: str
    venue: str
    key_id: str
    task_queue: str
    verify_interval_seconds: float
    verify_deadline_seconds: float


@dataclass(frozen=True)
class FanOutInput:
    incident_id: str
    venues: tuple[tuple[str, str], ...]  # (venue, its task queue)
    control_queue: str
    window: int
    verify_interval_seconds: float
    verify_deadline_seconds: float


@workflow.defn
class KeyWorkflow:
    """One key: prepare, revoke, verify until rejected or the deadline."""

    @workflow.run
    async def run(self, params: KeyInput) -> str:
        request = BatchRequest(params.incident_id, params.venue, (params.key_id,))
        prepared = await self._step(options.PREPARE_BATCH, request, params)
        if not prepared.proceed:
            return "ended"
        revoked = await self._step(options.REVOKE_BATCH, request, params)
        deadline = workflow.now() + timedelta(seconds=params.verify_deadline_seconds)
        interval = timedelta(seconds=params.verify_interval_seconds)
        pending = revoked.proceed
        while pending:
            final = workflow.now() + interval >= deadline
            verified = await self._step(
                options.VERIFY_BATCH, VerifyRequest(params.incident_id, params.venue, pending, final), params
            )
            pending = verified.proceed
            if pending and not final:
                await workflow.sleep(interval)
        return "done"

    async def _step(self, name: str, request: BatchRequest | VerifyRequest, params: KeyInput) -> BatchResult:
        result: BatchResult = await workflow.execute_activity(
            name,
            request,
            result_type=BatchResult,
            task_queue=params.task_queue,
            start_to_close_timeout=options.BATCH_TIMEOUT,
            heartbeat_timeout=options.BATCH_HEARTBEAT,
            retry_policy=options.BATCH_RETRY,
        )
        return result


@workflow.defn
class FanOutWorkflow:
    """Start one ``KeyWorkflow`` child per key, ``window`` at a time per venue."""

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}
        self._done = 0

    @workflow.run
    async def run(self, params: FanOutInput) -> int:
        await asyncio.gather(*(self._venue(params, venue, queue) for venue, queue in params.venues))
        return self._done

    async def _venue(self, params: FanOutInput, venue: str, queue: str) -> None:
        self._in_flight[venue] = 0
        after = 0
        children: list[asyncio.Task[None]] = []
        while True:
            page: Page = await workflow.execute_activity(
                options.LOAD_PAGE,
                PageRequest(params.incident_id, venue, after, PAGE),
                result_type=Page,
                task_queue=params.control_queue,
                start_to_close_timeout=options.CONTROL_TIMEOUT,
                retry_policy=options.CONTROL_RETRY,
            )
            if not page.keys:
                break
            after = page.last_seq
            for ref in page.keys:
                await workflow.wait_condition(lambda: self._in_flight[venue] < params.window)
                self._in_flight[venue] += 1
                children.append(asyncio.create_task(self._child(params, venue, queue, ref.key_id)))
        await asyncio.gather(*children)

    async def _child(self, params: FanOutInput, venue: str, queue: str, key_id: str) -> None:
        try:
            await workflow.execute_child_workflow(
                KeyWorkflow.run,
                KeyInput(
                    params.incident_id,
                    venue,
                    key_id,
                    queue,
                    params.verify_interval_seconds,
                    params.verify_deadline_seconds,
                ),
                id=f"{workflow.info().workflow_id}-{key_id}",
            )
        finally:
            self._in_flight[venue] -= 1
            self._done += 1
