"""What-if experiments: changes the profile suggests, patched in at run time to measure their gain first.

Nothing here changes keyrevoke's files; a patch lives only in the process that installs it, and the
report shows these runs apart from the headline figures. ``BENCH_WHATIF`` picks the patches (comma
list):

- ``heartbeat``: batch activities heartbeat at most about once a second per attempt (and the periodic
  beat runs every 1 s) instead of after every key (activities/batches.py ``BatchActivities._run``).
- ``send_counted``: the pacer's send window as it was before change 7 of the findings: a request
  counts for one second from its send, not until a second after its answer (activities/pacing.py
  ``VenuePacer.request``). Run side by side with the product to measure what change 7 does.
- ``fifo``: the pacer hands out its slots in order of arrival, revokes and the riskiest keys included,
  as before change 8 (``VenuePacer.request``'s ``urgent`` and ``priority``).

The earlier patches ``pool`` (pooled ccxt objects), ``window`` (the pacer's send window) and the small
first batch (a settings change) are the product's own behaviour now: ``ExchangeFactory.create`` and
``release``, ``VenuePacer``, ``first_batch_size``.

``python -m bench.whatif worker --queues all``: ``keyrevoke worker`` with the patches installed.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any


class _ThrottledActivity:
    """``temporalio.activity`` as the batch module sees it, with heartbeats at most every 0.9 s per attempt."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._last: dict[tuple[str, str, int], float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def heartbeat(self, *details: Any) -> None:
        info = self._real.info()
        key = (info.workflow_run_id or "", info.activity_id, info.attempt)
        now = time.monotonic()
        if now - self._last.get(key, 0.0) < 0.9:
            return
        self._last[key] = now
        self._real.heartbeat(*details)


def install_heartbeat_throttle() -> None:
    from activities import batches

    if not hasattr(batches, "HEARTBEAT_EVERY") or not hasattr(batches, "activity"):
        raise SystemExit("the heartbeat what-if no longer fits activities/batches.py: update bench/whatif.py")
    batches.activity = _ThrottledActivity(batches.activity)  # type: ignore[assignment,attr-defined]
    batches.HEARTBEAT_EVERY = 1.0


def install_send_counted_window() -> None:
    from activities import pacing

    pacer = pacing.VenuePacer
    if not all(hasattr(pacer, name) for name in ("request", "_granted", "_done")):
        raise SystemExit("the send_counted what-if no longer fits activities/pacing.py: update bench/whatif.py")

    @contextlib.asynccontextmanager
    async def request(self: Any, urgent: bool = False, priority: int = 0) -> AsyncIterator[None]:
        await self._granted(urgent, priority)
        self._done()  # counted as answered at once: the request leaves the window a second after its send
        yield

    pacer.request = request  # type: ignore[method-assign,assignment]


def install_first_come_first_served() -> None:
    from activities import pacing

    pacer = pacing.VenuePacer
    if "urgent" not in inspect.signature(pacer.request).parameters:
        raise SystemExit("the fifo what-if no longer fits activities/pacing.py: update bench/whatif.py")
    product = pacer.request

    def request(self: Any, urgent: bool = False, priority: int = 0) -> Any:
        return product(self)

    pacer.request = request  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "heartbeat": install_heartbeat_throttle,
    "send_counted": install_send_counted_window,
    "fifo": install_first_come_first_served,
}


def install(names: str) -> None:
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name not in PATCHES:
            raise SystemExit(f"unknown what-if {name!r} (known: {', '.join(PATCHES)})")
        PATCHES[name]()


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "worker":
        raise SystemExit("usage: python -m bench.whatif worker ARGS...")
    install(os.environ.get("BENCH_WHATIF", ""))
    from commander.main import main as keyrevoke_main

    sys.argv = ["keyrevoke", *argv]
    keyrevoke_main()


if __name__ == "__main__":
    main(sys.argv[1:])
