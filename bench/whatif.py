"""What-if experiments: changes the profile suggests, patched in at run time to measure their gain first.

Nothing here changes keyrevoke's files; a patch lives only in the process that installs it, and the
report shows these runs apart from the headline figures. ``BENCH_WHATIF`` picks the patches (comma
list; default ``pool``):

- ``pool``: ``ExchangeFactory.create`` builds a new ccxt object per probe (its constructor merges the
  venue's whole ``describe()`` tree). The patch keeps a pool of idle objects per venue and hands one out
  with the key's credentials set; ``release`` clears the credentials and returns it. Each object still
  serves one call at a time, so its per-object state (last answer, hooks) is not shared.
- ``heartbeat``: batch activities heartbeat at most about once a second (the periodic beat every 1 s)
  instead of after every key.
- ``window``: after the pacer's slot, a request also waits until fewer than ``rate`` requests were sent
  to the venue in the last second (the venue's own sliding-window accounting), so that late wake-ups
  cannot cluster.

``python -m bench.whatif worker --queues all``: ``keyrevoke worker`` with the patches installed;
``python -m bench.whatif plain ARGS``: the plain script with them (only ``pool`` applies there).
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time
from typing import Any


def install_pooled_exchanges() -> None:
    import activities.venues.registry  # noqa: F401 - loads every adapter module, so that all are patched
    from activities.venues import answers as answers_module
    from activities.venues import exchanges

    original_create = exchanges.ExchangeFactory.create
    original_release = answers_module.release

    def create(self: Any, venue: str, credentials: Any) -> Any:
        if credentials is None:
            return original_create(self, venue, None)
        pools: dict[str, list[Any]] = self.__dict__.setdefault("_pools", {})
        pool = pools.setdefault(venue, [])
        exchange = pool.pop() if pool else original_create(self, venue, None)
        exchange.apiKey = credentials.api_key
        exchange.secret = credentials.secret
        exchange.password = credentials.passphrase or None
        exchange._pool = pool
        return exchange

    async def release(exchange: Any) -> None:
        pool = getattr(exchange, "_pool", None)
        if pool is None:
            await original_release(exchange)
            return
        exchange.apiKey = exchange.secret = exchange.password = None
        pool.append(exchange)

    exchanges.ExchangeFactory.create = create  # type: ignore[method-assign]
    # every module that imported ``release`` by name holds its own reference: replace each one
    for name, module in list(sys.modules.items()):
        if name.startswith("activities.") and getattr(module, "release", None) is original_release:
            module.release = release  # type: ignore[attr-defined]


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

    batches.activity = _ThrottledActivity(batches.activity)  # type: ignore[assignment]
    batches.HEARTBEAT_EVERY = 1.0


def install_send_window() -> None:
    from activities import pacing

    original = pacing.VenuePacer.acquire

    async def acquire(self: Any) -> None:
        await original(self)
        sent: collections.deque[float] = self.__dict__.setdefault("_sent", collections.deque())
        limit = max(1, int(1.0 / self.interval))
        while True:
            now = time.monotonic()
            while sent and sent[0] <= now - 1.0:
                sent.popleft()
            if len(sent) < limit:
                break
            await asyncio.sleep(sent[0] + 1.0 - now)
        sent.append(time.monotonic())

    pacing.VenuePacer.acquire = acquire  # type: ignore[method-assign]


PATCHES = {"pool": install_pooled_exchanges, "heartbeat": install_heartbeat_throttle, "window": install_send_window}


def install(names: str) -> None:
    for name in filter(None, (n.strip() for n in names.split(","))):
        PATCHES[name]()


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m bench.whatif worker|plain ARGS...")
    install(os.environ.get("BENCH_WHATIF", "pool"))
    if argv[0] == "plain":
        from bench.plain import main as plain_main

        raise SystemExit(plain_main(argv[1:]))
    from commander.main import main as keyrevoke_main

    sys.argv = ["keyrevoke", *argv]
    keyrevoke_main()


if __name__ == "__main__":
    main(sys.argv[1:])
