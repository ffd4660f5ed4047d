"""The baseline without durability: a plain asyncio loop of probe, delete, probe per key.

It uses keyrevoke's own client code (the venue adapters and the ``ExchangeFactory`` that shares one
HTTP session and SSL context and lends pooled ccxt objects: each adapter call takes one and releases it
to the factory), at the same concurrency as keyrevoke (``keys_in_flight`` keys of a venue
at once, every venue in parallel), and nothing else: no ledger, no platform hook, no Temporal, no
retries, no pacing. A key counts as confirmed when the first probe authenticated and the second was
rejected, as keyrevoke counts it.

Runs as its own process: ``python -m bench.plain INVENTORY MASTERS VENUE_URLS_JSON KEYS_IN_FLIGHT``;
prints one JSON line with the counts, the seconds from the first request to the last answer, and how
many ccxt objects the factory built per venue (with pooling, about the keys in flight, not the calls).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

from activities.venues.base import Credentials, KeyTarget
from activities.venues.exchanges import ExchangeFactory
from activities.venues.registry import build_adapter, load_master_credentials
from keyrevoke.crypto import fingerprint
from keyrevoke.inventory import read_inventory


async def run(
    inventory: Path, masters_file: Path, venue_urls: dict[str, str], keys_in_flight: int
) -> dict[str, object]:
    rows, errors = read_inventory(inventory)
    if errors:
        raise SystemExit(f"{inventory}: {len(errors)} bad rows")
    exchanges = ExchangeFactory(venue_urls)
    masters = load_master_credentials(masters_file)
    venues = sorted({row.venue for row in rows})
    adapters = {venue: build_adapter(venue, exchanges, masters) for venue in venues}
    outcomes: Counter[str] = Counter()

    async def one(row) -> None:  # type: ignore[no-untyped-def]
        adapter = adapters[row.venue]
        target = KeyTarget(
            row.key_id,
            row.account_id,
            row.account_name,
            row.method,
            fingerprint(row.api_key),
            Credentials(row.api_key, row.secret, row.passphrase),
        )
        try:
            before = await adapter.probe(target)
            await adapter.revoke(target)
            after = await adapter.probe(target)
        except Exception as error:  # a baseline counts failures, it does not handle them
            outcomes[f"error:{type(error).__name__}"] += 1
            return
        outcomes["confirmed" if before.accepted and not after.accepted else "other"] += 1

    async def venue_loop(venue: str) -> None:
        gate = asyncio.Semaphore(keys_in_flight)

        async def bounded(row) -> None:  # type: ignore[no-untyped-def]
            async with gate:
                await one(row)

        await asyncio.gather(*(bounded(row) for row in rows if row.venue == venue))

    started = time.monotonic()
    try:
        await asyncio.gather(*(venue_loop(venue) for venue in venues))
    finally:
        seconds = time.monotonic() - started
        # every adapter call has released its object by now: close the idle ones, the masters, the session
        await exchanges.close()
    built = dict(exchanges.built)  # per venue
    return {
        "keys": len(rows),
        "seconds": seconds,
        "outcomes": dict(outcomes),
        "cpu_seconds": time.process_time(),
        "exchanges_built": built,
    }


def main(argv: list[str]) -> int:
    inventory, masters, urls, in_flight = Path(argv[0]), Path(argv[1]), json.loads(argv[2]), int(argv[3])
    result = asyncio.run(run(inventory, masters, urls, in_flight))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
