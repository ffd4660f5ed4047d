"""The venue simulator in its own process, with a side door for the benchmark to read its statistics.

The simulator is the one the demo runs (``commander.simulate.simulator_for``); the benchmark only
wraps its statistics object so that every request also records *when* it arrived (wall-clock), per
venue and endpoint: ``SimStats`` counts requests per second but keeps no time of the first one.

On start it prints one JSON line on stdout: ``{"venue_urls": {...}, "stats_url": "http://..."}``.
``GET <stats_url>`` answers the statistics snapshot plus ``first_seen`` (venue -> path -> unix time).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from commander.simulate import simulator_for
from venuesim import SimStats


class _Clock:
    """Wraps ``SimStats.record_request`` to remember the first arrival per venue and path."""

    def __init__(self, stats: SimStats) -> None:
        self.first_seen: dict[str, dict[str, float]] = {}
        self._inner = stats.record_request
        stats.record_request = self._record  # type: ignore[method-assign]

    def _record(self, venue: str, path: str, now: float | None = None) -> None:
        at = time.time() if now is None else now
        per_venue = self.first_seen.setdefault(venue, {})
        per_venue.setdefault(path, at)
        self._inner(venue, path, at)


async def serve(inventory: Path, masters: Path, scenario: Path | None) -> None:
    simulator, _ = simulator_for(inventory, masters, scenario)
    clock = _Clock(simulator.stats)
    await simulator.start()

    async def stats(_: web.Request) -> web.Response:
        body: dict[str, Any] = simulator.stats.snapshot()
        body["first_seen"] = clock.first_seen
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"venue_urls": simulator.venue_urls, "stats_url": f"http://127.0.0.1:{port}/stats"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    await simulator.stop()


def main(argv: list[str]) -> int:
    inventory, masters = Path(argv[0]), Path(argv[1])
    scenario = Path(argv[2]) if len(argv) > 2 and argv[2] else None
    asyncio.run(serve(inventory, masters, scenario))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
