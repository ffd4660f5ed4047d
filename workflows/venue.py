"""The venue workflow: one per incident and venue, owning that venue's pace.

It loads the venue's keys in pages through an activity, keeps a bounded window of batches in flight,
runs each batch through prepare (freeze + baseline probe), revoke and verify on the venue's own task
queue, and continues-as-new when its history grows, carrying the page cursor.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from keyrevoke.models import (
        BatchRequest,
        BatchResult,
        KeyRef,
        Page,
        PageRequest,
        VenueInput,
        VenueProgress,
        VerifyRequest,
    )
    from workflows import options


@workflow.defn
class VenueWorkflow:
    """Revoke and verify every key of one venue in one incident."""

    def __init__(self) -> None:
        self._input: VenueInput | None = None
        self._in_flight = 0
        self._batches_done = 0
        self._last_seq = 0
        self._exhausted = False

    @workflow.run
    async def run(self, params: VenueInput) -> int:
        """Process the venue's keys after ``params.after_seq``; returns the number of batches done."""
        self._input = params
        self._batches_done = params.batches_done
        self._last_seq = params.after_seq
        running: set[asyncio.Task[None]] = set()
        while True:
            while (
                not self._exhausted
                and len(running) < params.batches_in_flight
                and not workflow.info().is_continue_as_new_suggested()
            ):
                page = await self._load_page(params)
                if not page.keys:
                    self._exhausted = True
                    break
                self._last_seq = page.last_seq
                running.add(asyncio.create_task(self._run_batch(params, page.keys)))
            self._in_flight = len(running)
            if not running:
                if self._exhausted:
                    break
                # Loading stopped because the history is long: start afresh from the cursor.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(replace(params, after_seq=self._last_seq, batches_done=self._batches_done))
            done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                running.discard(task)
                task.result()  # a failed batch fails the venue workflow: its retry policy is exhausted
                self._batches_done += 1
            self._in_flight = len(running)
        return self._batches_done

    async def _load_page(self, params: VenueInput) -> Page:
        page: Page = await workflow.execute_activity(
            options.LOAD_PAGE,
            PageRequest(params.incident_id, params.venue, self._last_seq, params.batch_size),
            result_type=Page,
            task_queue=params.control_queue,
            start_to_close_timeout=options.CONTROL_TIMEOUT,
            retry_policy=options.CONTROL_RETRY,
        )
        return page

    async def _batch(self, name: str, params: VenueInput, request: BatchRequest | VerifyRequest) -> BatchResult:
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

    async def _run_batch(self, params: VenueInput, keys: tuple[KeyRef, ...]) -> None:
        """One batch's whole life: prepare, revoke, then verify until confirmed or the deadline."""
        key_ids = tuple(k.key_id for k in keys)
        prepared = await self._batch(
            options.PREPARE_BATCH, params, BatchRequest(params.incident_id, params.venue, key_ids)
        )
        if not prepared.proceed:
            return
        revoked = await self._batch(
            options.REVOKE_BATCH, params, BatchRequest(params.incident_id, params.venue, prepared.proceed)
        )
        deadline = workflow.now() + timedelta(seconds=params.verify_deadline_seconds)
        interval = timedelta(seconds=params.verify_interval_seconds)
        pending = revoked.proceed
        while pending:
            final = workflow.now() + interval >= deadline
            verified = await self._batch(
                options.VERIFY_BATCH, params, VerifyRequest(params.incident_id, params.venue, pending, final)
            )
            pending = verified.proceed
            if pending and not final:
                await workflow.sleep(interval)

    @workflow.query
    def progress(self) -> VenueProgress:
        """Small, whatever the number of keys: per-key truth is in the ledger."""
        venue = self._input.venue if self._input else ""
        return VenueProgress(venue, self._batches_done, self._in_flight, self._last_seq, self._exhausted)
