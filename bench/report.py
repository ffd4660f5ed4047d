"""docs/benchmarks.md from one run's results: the answers first (how fast, against what, on what), then each
section's table. Every figure is ``median (min-max, n=runs)``; ratios are taken per repetition between
variants that ran side by side, then summarized the same way.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

GOALS: dict[str, Any] = {
    "plain": (0.5, 0.7),  # keyrevoke / plain script, keys/s: the floor, and the goal
    "perkey": 10.0,  # keyrevoke / workflow per key, keys/s
    "over_bound": 0.05,  # makespan over the rate-limit bound
    "status_seconds": 1.0,
    "rss_mib": 512.0,
}


def fig(values: Iterable[float | None], digits: int = 1, unit: str = "") -> str:
    got = [float(v) for v in values if v is not None]
    if not got:
        return "-"
    if len(got) == 1:
        return f"{got[0]:,.{digits}f}{unit}"
    return f"{statistics.median(got):,.{digits}f}{unit} ({min(got):,.{digits}f}-{max(got):,.{digits}f}, n={len(got)})"


def med(values: Iterable[float | None]) -> float | None:
    got = [float(v) for v in values if v is not None]
    return statistics.median(got) if got else None


def met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def cpu_ms(row: dict[str, Any]) -> float:
    return float(1000 * row["extra"]["cpu"]["worker"] / row["keys"])


def ratios(results: dict[str, Any], other: str) -> list[float]:
    return [
        rep["keyrevoke"]["keys_per_second"] / rep[other]["keys_per_second"]
        for rep in results.get("throughput", [])
        if rep[other]["keys_per_second"]
    ]


def over_bound(run: dict[str, Any], rps: float, venues: int) -> float:
    """How far a rate-limited run's makespan is over its bound: per venue, 3 requests a key at the venue's rate."""
    return float(100 * (run["seconds"] / (run["keys"] / venues * 3 / rps) - 1))


def limited(run: dict[str, Any]) -> int:
    return int(run["extra"]["sim"]["rate_limited"] + run["extra"]["sim"]["banned"])


def mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def glance(r: dict[str, Any]) -> list[str]:
    rows = ["| measurement | against | goal | measured | |", "|---|---|---|---|---|"]
    if r.get("throughput"):
        plain, perkey = ratios(r, "plain"), ratios(r, "perkey")
        floor, goal = GOALS["plain"]
        verdict = f"{met((med(plain) or 0) >= floor)} (floor); goal 0.7x {met((med(plain) or 0) >= goal)}"
        rows.append(
            f"| keys confirmed/s, keyrevoke / plain script | a plain asyncio loop over the same adapters, "
            f"same keys in flight | >= {floor}x ({goal}x goal) | {fig(plain, 2, 'x')} | {verdict} |"
        )
        rows.append(
            f"| keys confirmed/s, keyrevoke / workflow per key | one child workflow per key, keyrevoke's "
            f"own activities | >= {GOALS['perkey']:g}x | {fig(perkey, 1, 'x')} | "
            f"{met((med(perkey) or 0) >= GOALS['perkey'])} |"
        )
        reps = r["throughput"]
        rows.append("| worker CPU ms per key: keyrevoke; plain; workflow per key | | | "
                    f"{fig(cpu_ms(x['keyrevoke']) for x in reps)}; {fig(cpu_ms(x['plain']) for x in reps)}; "
                    f"{fig(cpu_ms(x['perkey']) for x in reps)} | |")  # fmt: skip
    for name, label in (("rate", "one worker per venue"), ("workers", "three workers at one venue")):
        section = r.get(name)
        if section and section["runs"]:
            over = [over_bound(x, section["venue_rps"], section["venues"]) for x in section["runs"]]
            answers = [limited(x) for x in section["runs"]]
            ok = (med(over) or 0) <= 100 * GOALS["over_bound"] and sum(answers) == 0
            rows.append(
                f"| keyrevoke at the venue's full limit, {label}: makespan over the bound; 429/418 answers "
                f"| the venue's own limit | <= 5%; 0 | {fig(over, 1, '%')}; {fig(answers, 0)} | {met(ok)} |"
            )
    for m in r.get("million", []):
        if "stages" not in m:
            rows.append(f"| {m['backend']}: million-key stages | | | not run: {m['skipped']} | |")
            continue
        s = m["stages"]
        peak = max(x["peak_rss_mib"] for x in s.values() if "peak_rss_mib" in x)
        rows.append(
            f"| {m['keys']:,} keys, {m['backend']}: `incident status` (whole command; its ledger query) "
            f"| | < 1 s | {s['status']['seconds']:.2f} s; {s['status']['ledger_query_seconds']:.2f} s | "
            f"{met(s['status']['seconds'] < GOALS['status_seconds'])} |"
        )
        rows.append(
            f"| {m['keys']:,} keys, {m['backend']}: peak RSS of every command (plan, status, report, "
            f"verify-report) | | < 512 MiB | at most {mib(peak)} | {met(peak < GOALS['rss_mib'])} |"
        )
    scale = r.get("scale")
    if scale:
        rss = scale["extra"]["peak_rss_mib"]
        history = scale["extra"]["history"]
        rows.append(
            f"| the workflows over {scale['keys']:,} keys: peak RSS of every process | | < 512 MiB | at most "
            f"{mib(max(rss.values()))} ({max(rss, key=lambda k: rss[k])}) | "
            f"{met(max(rss.values()) < GOALS['rss_mib'])} |"
        )
        rows.append(
            f"| the same: largest workflow history; largest payload | | | {history['max_events']:,} events, "
            f"{history['max_history_bytes'] / 1024:,.0f} KiB; {history['max_payload'] / 1024:,.1f} KiB | |"
        )
    return rows


def throughput(r: dict[str, Any]) -> list[str]:
    reps = r.get("throughput")
    if not reps:
        return []
    c = r["concurrency"]
    out = [
        "## Throughput, side by side",
        "",
        f"Four venues ({', '.join(('binance', 'bybit', 'okx', 'kucoin'))}), keys spread evenly, no rate limit at the "
        "simulator (keyrevoke keeps its default pace, its server activity rate out of the way), "
        f"{c['per_venue']} keys in flight per venue for every variant (keyrevoke: {c['batches_in_flight']} batches "
        f"of up to {c['batch_size']} keys, {c['keys_in_flight_per_batch']} keys at once in each).",
        "",
        "- **plain script** (`bench/plain.py`): an asyncio loop of probe, delete, probe per key over keyrevoke's own "
        "adapters and `ExchangeFactory`; no ledger, hook, Temporal, retries or pacing. Its makespan runs from its "
        "first request to its last answer; its CPU is the script's own after its imports.",
        "- **keyrevoke**: `keyrevoke incident start` launched as the commander does, one `keyrevoke worker --queues "
        "all` process, a Temporal dev server and a SQLite ledger; its makespan runs from the launch to the incident "
        "workflow's end (planning included); its CPU is the worker's.",
        "- **workflow per key** (`bench/perkey_workflows.py`): one child workflow per key calling keyrevoke's own "
        "prepare, revoke and verify activities for that key, the same keys in flight; fewer keys (it is slow).",
        "",
        "| variant | keys per run | keys confirmed/s | makespan (s) | worker CPU ms/key | server CPU ms/key "
        "| all confirmed |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("plain", "plain script"), ("keyrevoke", "keyrevoke"), ("perkey", "workflow per key")):
        rows = [rep[kind] for rep in reps]
        server = [1000 * x["extra"]["cpu"]["server"] / x["keys"] for x in rows if "server" in x["extra"]["cpu"]]
        out.append(f"| {label} | {rows[0]['keys']:,} | {fig(x['keys_per_second'] for x in rows)} | "
                   f"{fig(x['seconds'] for x in rows)} | {fig(cpu_ms(x) for x in rows)} | {fig(server)} | "
                   f"{'yes' if all(x['confirmed'] == x['keys'] for x in rows) else 'NO'} |")  # fmt: skip
    out += ["", f"- keyrevoke / plain script, per repetition: {fig(ratios(r, 'plain'), 2, 'x')}",
            f"- keyrevoke / workflow per key, per repetition: {fig(ratios(r, 'perkey'), 1, 'x')}", ""]  # fmt: skip
    return out


def rate(r: dict[str, Any], name: str, title: str, text: str) -> list[str]:
    section = r.get(name)
    if not section or not section["runs"]:
        return []
    rps, venues = section["venue_rps"], section["venues"]
    runs = section["runs"]
    keys = runs[0]["keys"]
    bound = keys / venues * 3 / rps
    out = [f"## {title}", "", text.format(rps=rps, keys=keys, per=keys // venues, bound=bound, venues=venues), "",
           "| makespan (s) | over the bound | 429/418 answers | busiest second at any venue (requests) "
           "| all confirmed |",
           "|---|---|---|---|---|",
           f"| {fig(x['seconds'] for x in runs)} | {fig((over_bound(x, rps, venues) for x in runs), 1, '%')} | "
           f"{fig((limited(x) for x in runs), 0)} | {fig((x['extra']['sim']['peak_rps'] for x in runs), 0)} | "
           f"{'yes' if all(x['confirmed'] == x['keys'] for x in runs) else 'NO'} |", ""]  # fmt: skip
    answers = sum(limited(x) for x in runs)
    if answers:
        out += [f"The venue gave {answers} answers 429/418: keyrevoke sent more than the venue's limit within one "
                "of its sliding one-second windows, though no calendar second (the busiest-second column) held more "
                "than the limit.", ""]  # fmt: skip
    return out


def scale(r: dict[str, Any]) -> list[str]:
    out = []
    for m in r.get("million", []):
        if "stages" not in m:
            out += [f"## A million keys, {m['backend']}", "", f"Not run: {m['skipped']}.", ""]
            continue
        s = m["stages"]
        out += [
            f"## {m['keys']:,} keys, {m['backend']} ledger",
            "",
            f"The ledger was written directly ({m['keys']:,} keys in {m['write_keys_seconds']:.0f} s; every key's "
            f"outcome and {m['events']:,} chained events in {m['write_outcomes_seconds']:.0f} s: 98.9% confirmed, 1% "
            "escalated, 0.1% live, with the events a real batch records); the incident was created and planned by "
            "keyrevoke's own ledger code. Each stage below is its own process; peak RSS is the process's own "
            "(`ru_maxrss`, read by `bench/peak.py`).",
            "",
            "| stage | time | peak RSS | |",
            "|---|---|---|---|",
            f"| plan (`Ledger.create_incident` + `plan_incident`) | {s['plan']['seconds']:.1f} s | "
            f"{mib(s['plan']['peak_rss_mib'])} | |",
            f"| `keyrevoke incident status` (median of {s['status']['runs']}) | {s['status']['seconds']:.2f} s "
            f"(its ledger query: {s['status']['ledger_query_seconds']:.3f} s) | {mib(s['status']['peak_rss_mib'])} | "
            f"counted {s['status']['keys_counted']:,} keys |",
        ]
        keys = s["keys"]
        out.append(
            f"| `keyrevoke incident keys` (first page) | {keys['seconds']:.2f} s | {mib(keys['peak_rss_mib'])} | |"
            if "seconds" in keys
            else f"| `keyrevoke incident keys` | - | - | skipped: {keys['skipped']} |"
        )
        sizes = ", ".join(f"{name} {size / 2**20:,.1f} MiB" for name, size in s["report"]["file_bytes"].items()
                          if not name.endswith(".sig"))  # fmt: skip
        out.append(
            f"| `keyrevoke incident report` | {s['report']['seconds']:.0f} s | "
            f"{mib(s['report']['peak_rss_mib'])} | {sizes} |"
        )
        out.append(
            f"| `keyrevoke incident verify-report` | {s['verify-report']['seconds']:.0f} s | "
            f'{mib(s["verify-report"]["peak_rss_mib"])} | "{s["verify-report"]["said"]}" |'
        )
        out.append("")
    run = r.get("scale")
    if run:
        x = run["extra"]
        h = x["history"]
        out += [
            f"## The workflows over {run['keys']:,} keys",
            "",
            f"A real incident (four venues, no venue limit, one worker): {run['confirmed']:,} of {run['keys']:,} "
            f"confirmed in {run['seconds']:.0f} s ({run['keys_per_second']:.0f} keys/s). Peak RSS per process "
            "(`VmHWM`; the command's `ru_maxrss`):",
            "",
            "| process | peak RSS |",
            "|---|---|",
            *(f"| {name} | {mib(value)} |" for name, value in x["peak_rss_mib"].items()),
            "",
            f"Histories: {h['runs']} workflow runs (continue-as-new included); the largest {h['max_events']:,} events "
            f"and {h['max_history_bytes'] / 1024:,.0f} KiB; the largest payload {h['max_payload'] / 1024:,.1f} KiB.",
            "",
        ]
    return out


RATE_TEXT = (
    "The simulator limits each of the {venues} venues to {rps:g} requests/s (a sliding one-second window, "
    "answering 429 past it); keyrevoke is set to the same figure (`KEYREVOKE_VENUE_REQUESTS_PER_SECOND={rps:g}`, the "
    "venue's full limit). {keys:,} keys, {per:,} per venue, three requests per key (probe, delete, probe): the "
    "makespan's lower bound is {per:,} x 3 / {rps:g} = {bound:.1f} s. The limit is below what one worker reaches "
    "here, so the venue, not the worker's CPU, bounds the makespan."
)
WORKERS_TEXT = (
    "Three worker processes (`keyrevoke worker --queues all`) serve one venue limited to {rps:g} requests/s, each "
    "set to that full limit; their request slots come from one schedule in the ledger. {keys:,} keys, three "
    "requests each: the bound is {keys:,} x 3 / {rps:g} = {bound:.1f} s."
)


NOT_HERE = """## Not measured here

- A worker killed mid-run, profiles of where the CPU goes, and an incident of 100,000 keys over eight venues each at
  its published limit: not part of this harness.
- `incident status` is timed as a whole command (interpreter start, imports, opening the ledger, asking Temporal,
  the ledger query, printing) and its ledger query alone (`Ledger.counts`, in the benchmark's process).

"""

HOW = """## Running it

- `python -m bench run --quick`: what produced this document (about half an hour here); `python -m bench run`: three
  repetitions everywhere and the workflows over 100,000 keys (over an hour here); `--tiny`: every section at sizes
  that only show it works (what `tests/test_bench.py` runs); `--only throughput,rate,workers,scale`; `--no-postgres`.
- `python -m bench report bench/results/<run>.json` writes this document again from a saved run.
- What is where: `bench/runs.py` one run of each kind (keyrevoke, the plain script, the workflow per key);
  `bench/plain.py`, `bench/perkey.py` and `bench/perkey_workflows.py` the baselines; `bench/million.py` the
  million-key ledger and the commands run on it; `bench/procs.py`, `bench/simproc.py` and `bench/peak.py` the
  processes and what is read from them; `bench/suite.py` the sections and sizes; `bench/report.py` this document.
"""


def render(r: dict[str, Any], command: str) -> str:
    m = r["machine"]
    load = ", ".join(f"{x:.1f}" for x in m["load_at_start"])
    end = ", ".join(f"{x:.1f}" for x in r.get("load_at_end", []))
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{command}` ({r['minutes']:.0f} minutes) on code {m['revision']}: the current code against its "
        "baselines, side by side in one run. `python -m bench run --help` shows the options; the raw figures are in "
        f"`bench/results/{r['name']}.json`. Earlier figures are in the git history of this file.",
        "",
        f"**Machine:** {m['nproc']} CPUs ({m['cpu']}), {m['memory_mib']:,} MiB, {m['os']}, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". **Shared and loaded:** other work ran on the same cores throughout (load average {load} at the start"
        + (f", {end} at the end" if end else "")
        + "), so absolute rates move between minutes; the ratios between variants that ran side by side are what "
        "count. Everything ran on loopback: the venue simulator, the Temporal dev server and the worker each in its "
        "own process, each run with a fresh inventory, ledger, simulator and server.",
        "",
        *glance(r),
        "",
        *throughput(r),
        *rate(r, "rate", "Rate limits: keyrevoke at the venue's full limit", RATE_TEXT),
        *rate(r, "workers", "Three workers at one venue's full limit", WORKERS_TEXT),
        *scale(r),
        *NOT_HERE.splitlines(),
        *HOW.splitlines(),
    ]
    return "\n".join(lines).rstrip() + "\n"
