"""The figures the report compares across code versions, computed from a results dict the same way every time.

``compute(results)`` gives every figure it can find as ``{"values": [...], "section": key}``, where the
section names the results key the values came from (its run is in the results' ``provenance``). The
report uses it for the figures of the current results and, through bench/before.py, for the figures
saved from the results measured before the changes the first findings led to (bench/results/before.json).
"""

# ruff: noqa: E501 - the table of figures reads best one figure per line

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

Values = list[float]


def fig(values: Iterable[float | None], digits: int = 1, unit: str = "") -> str:
    """``median (min-max, n=N)``; one value alone is shown as ``value (n=1)``."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    f = f"{{:.{digits}f}}"
    if len(vals) == 1:
        return f"{f.format(vals[0])}{unit} (n=1)"
    return f"{f.format(statistics.median(vals))}{unit} ({f.format(min(vals))}-{f.format(max(vals))}, n={len(vals)})"


def med(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def kind(runs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The valid runs of one variant (a run marked ``invalid`` is kept in the raw results, not shown)."""
    return [r for r in runs if r["kind"] == name and not r.get("invalid")]


def by_rep(runs: list[dict[str, Any]], name: str) -> dict[int, dict[str, Any]]:
    """A variant's runs by repetition (``rep`` if recorded, else their order among the variant's runs)."""
    mine = [r for r in runs if r["kind"] == name]
    return {int(r.get("rep", i)): r for i, r in enumerate(mine) if not r.get("invalid")}


def ratios(runs: list[dict[str, Any]], num: str, den: str) -> Values:
    """Per repetition ratio of keys/s: ``num``'s run against ``den``'s run of the same repetition."""
    a, b = by_rep(runs, num), by_rep(runs, den)
    return [a[i]["keys_per_second"] / b[i]["keys_per_second"] for i in sorted(a) if i in b and b[i]["keys_per_second"]]


def cpu_per_key(runs: list[dict[str, Any]], process: str) -> Values:
    return [1000 * r["extra"]["cpu"].get(process, 0.0) / r["keys"] for r in runs if r["keys"]]


def over_bound(run: dict[str, Any], rps: float) -> float:
    """How far a rate-limited run's makespan is over its bound (keys/4 venues x 3 requests / rate)."""
    per_venue = run["keys"] / 4
    bound = per_venue * 3 / rps
    return float(run["seconds"] / bound - 1)


def steady_rss(run: dict[str, Any]) -> float | None:
    """The worker's median RSS while a run was under way (its progress samples strictly between the ends)."""
    prog = run["extra"].get("progress") or []
    return med([rss for _, n, rss in prog if 0 < n < run["keys"]])


def recorded_to_first_revoke(run: dict[str, Any]) -> float | None:
    e = run["extra"]
    first, created = e["sim"].get("first_revoke_request_after"), e.get("incident_created_after")
    return first - created if first is not None and created is not None else None


def _tp(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = results.get("throughput") or []
    return runs


def _rate_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    rate = results.get("rate") or {}
    runs: list[dict[str, Any]] = rate.get("runs") or []
    return runs


def _variant_runs(variant: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """The rate section's side-by-side runs of ``variant`` (``headroom``: the lower setting; ``send_counted``:
    the send window before change 7; ``fifo``: no priority for revokes, before change 8), absent from results
    saved before it."""

    def runs_of(results: dict[str, Any]) -> list[dict[str, Any]]:
        found = (results.get("rate") or {}).get(variant) or {}
        runs: list[dict[str, Any]] = found.get("runs") or []
        return runs

    return runs_of


def _rate_figures(
    prefix: str, runs_of: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> dict[str, tuple[str, Callable[[dict[str, Any]], list[Any]]]]:
    """The rate section's figures, for one setting's runs."""
    return {
        f"{prefix}.over_bound_pct": ("rate", lambda r: [100 * over_bound(x, _rate_of(r)) for x in runs_of(r)]),
        f"{prefix}.limited_per_run": ("rate", lambda r: _limited(runs_of(r))),
        f"{prefix}.peak_rps": ("rate", lambda r: [max(x["extra"]["sim"]["peak_rps"].values()) for x in runs_of(r)]),
        f"{prefix}.busy_share_pct": (
            "rate",
            lambda r: [
                100 * statistics.mean(x["extra"]["sim"]["busy_rps"].values()) / _rate_of(r)
                for x in runs_of(r)
                if x["extra"]["sim"].get("busy_rps")
            ],
        ),
        f"{prefix}.makespan_seconds": ("rate", lambda r: [x["seconds"] for x in runs_of(r)]),
        f"{prefix}.all_confirmed": ("rate", lambda r: [float(x["confirmed"] == x["keys"]) for x in runs_of(r)]),
        f"{prefix}.first_revoke_request_after": (
            "rate",
            lambda r: [x["extra"]["sim"]["first_revoke_request_after"] for x in runs_of(r)],
        ),
        # absent (None, left out) from runs saved before it was recorded
        f"{prefix}.top_revoked_after": ("rate", lambda r: [x["extra"].get("top_revoked_after") for x in runs_of(r)]),
    }


def _rate_of(results: dict[str, Any]) -> float:
    return float((results.get("rate") or {}).get("venue_rps") or 15.0)


def _area(results: dict[str, Any], profile: str, prefix: str) -> Values:
    p = (results.get("profile") or {}).get(profile)
    if not p:
        return []
    return [sum(share for area, share in p["by_area"] if area.startswith(prefix))]


#: the areas of the worker's profile with a figure each: figure name -> the start of the area's name (bench/profile.py)
_WORKER_AREAS = {
    "ledger": "ledger",
    "thread_pool": "thread-pool",
    "telemetry": "tracing and metrics",
    "hook": "platform hook",
    "temporal": "Temporal SDK",
}


def _profile_figures(
    profile: str, areas: dict[str, str]
) -> dict[str, tuple[str, Callable[[dict[str, Any]], list[Any]]]]:
    """``profile.<profile>.<name>_pct``: the share of a profile's samples charged to each area."""

    def share(prefix: str) -> Callable[[dict[str, Any]], list[Any]]:
        return lambda r: _area(r, profile, prefix)

    return {f"profile.{profile}.{name}_pct": ("profile", share(prefix)) for name, prefix in areas.items()}


def _whatif(results: dict[str, Any], part: str) -> list[dict[str, Any]]:
    runs: Any = (results.get("whatif") or {}).get(part) or []
    return list(runs)


def scale_runs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scale runs by size (``scales``; results saved before it hold one run as ``scale``)."""
    scales: dict[str, dict[str, Any]] = dict(results.get("scales") or {})
    if not scales and results.get("scale"):
        scales[str(results["scale"]["keys"])] = results["scale"]
    return scales


def _limited(runs: list[dict[str, Any]]) -> Values:
    return [r["extra"]["sim"]["rate_limited"] + r["extra"]["sim"]["banned"] for r in runs]


#: name -> (section, values from the results; a None among them, a run without the value, is left out)
FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], list[Any]]]] = {
    # section 1: throughput at the throughput size, and the ratios of the goals
    "throughput.keyrevoke.keys_per_second": ("throughput", lambda r: [x["keys_per_second"] for x in kind(_tp(r), "keyrevoke")]),
    "throughput.keyrevoke.worker_cpu_ms_per_key": ("throughput", lambda r: cpu_per_key(kind(_tp(r), "keyrevoke"), "worker")),
    "throughput.keyrevoke.server_cpu_ms_per_key": ("throughput", lambda r: cpu_per_key(kind(_tp(r), "keyrevoke"), "server")),
    "throughput.plain.keys_per_second": ("throughput", lambda r: [x["keys_per_second"] for x in kind(_tp(r), "plain")]),
    "throughput.plain.cpu_ms_per_key": ("throughput", lambda r: cpu_per_key(kind(_tp(r), "plain"), "script")),
    "throughput.perkey.keys_per_second": ("throughput", lambda r: [x["keys_per_second"] for x in kind(_tp(r), "perkey")]),
    "throughput.perkey.worker_cpu_ms_per_key": ("throughput", lambda r: cpu_per_key(kind(_tp(r), "perkey"), "worker")),
    "throughput.perkey.server_cpu_ms_per_key": ("throughput", lambda r: cpu_per_key(kind(_tp(r), "perkey"), "server")),
    "throughput.keyrevoke_vs_plain": ("throughput", lambda r: ratios(_tp(r), "keyrevoke", "plain")),
    "throughput.keyrevoke_vs_perkey": ("throughput", lambda r: ratios(_tp(r), "keyrevoke", "perkey")),
    "throughput.keyrevoke.busy_rps": ("throughput", lambda r: [
        statistics.mean(x["extra"]["sim"]["busy_rps"].values())
        for x in kind(_tp(r), "keyrevoke") if x["extra"]["sim"].get("busy_rps")]),
    # the pooled-objects what-if of the first measurements (its runs sit in the throughput section)
    "whatif.pool.keyrevoke.keys_per_second": ("throughput", lambda r: [x["keys_per_second"] for x in kind(_tp(r), "keyrevoke+pool")]),
    "whatif.pool.keyrevoke.worker_cpu_ms_per_key": ("throughput", lambda r: cpu_per_key(kind(_tp(r), "keyrevoke+pool"), "worker")),
    "whatif.pool.keyrevoke_gain": ("throughput", lambda r: ratios(_tp(r), "keyrevoke+pool", "keyrevoke")),
    "whatif.pool.plain_gain": ("throughput", lambda r: ratios(_tp(r), "plain+pool", "plain")),
    "whatif.pool.keyrevoke_vs_plain": ("throughput", lambda r: ratios(_tp(r), "keyrevoke+pool", "plain+pool")),
    "whatif.pool.keyrevoke_vs_perkey": ("throughput", lambda r: ratios(_tp(r), "keyrevoke+pool", "perkey")),
    # the 10,000-key runs
    "big.keyrevoke.keys_per_second": ("big", lambda r: [x["keys_per_second"] for x in kind(r.get("big") or [], "keyrevoke")]),
    "big.plain.keys_per_second": ("big", lambda r: [x["keys_per_second"] for x in kind(r.get("big") or [], "plain")]),
    "big.keyrevoke.worker_cpu_ms_per_key": ("big", lambda r: cpu_per_key(kind(r.get("big") or [], "keyrevoke"), "worker")),
    "big.plain.cpu_ms_per_key": ("big", lambda r: cpu_per_key(kind(r.get("big") or [], "plain"), "script")),
    "big.keyrevoke.worker_peak_rss_mib": ("big", lambda r: [
        x["extra"]["worker_peak_rss_mib"] for x in kind(r.get("big") or [], "keyrevoke")]),
    # section 2: under the venue's rate limit, keyrevoke at its main setting (rate.*), at a lower one
    # (rate.headroom.*), and at the main one with the send window before change 7 (rate.send_counted.*)
    # and with slots first come, first served as before change 8 (rate.fifo.*)
    **_rate_figures("rate", _rate_runs),
    **_rate_figures("rate.headroom", _variant_runs("headroom")),
    **_rate_figures("rate.send_counted", _variant_runs("send_counted")),
    **_rate_figures("rate.fifo", _variant_runs("fifo")),
    "whatif.window.limited_per_run": ("whatif", lambda r: _limited(kind(_whatif(r, "rate"), "keyrevoke+window"))),
    "whatif.window.over_bound_pct": ("whatif", lambda r: [
        100 * over_bound(x, _rate_of(r)) for x in kind(_whatif(r, "rate"), "keyrevoke+window")]),
    # section 3: time to the first revoke
    "first_revoke.launch_to_first_revoke": ("throughput", lambda r: [
        x["extra"]["sim"]["first_revoke_request_after"] for x in kind(_tp(r), "keyrevoke")]),
    "first_revoke.recorded_to_first_revoke": ("throughput", lambda r: [
        recorded_to_first_revoke(x) for x in kind(_tp(r), "keyrevoke")]),
    "first_revoke.start_command_seconds": ("throughput", lambda r: [
        x["extra"]["start_command_seconds"] for x in kind(_tp(r), "keyrevoke")]),
    "first_revoke.incident_created_after": ("throughput", lambda r: [
        x["extra"]["incident_created_after"] for x in kind(_tp(r), "keyrevoke")]),
    "first_revoke.first_request_after": ("throughput", lambda r: [
        x["extra"]["sim"]["first_request_after"] for x in kind(_tp(r), "keyrevoke")]),
    "first_revoke.first_revoked_event_after": ("throughput", lambda r: [
        x["extra"]["first_revoked_event_after"] for x in kind(_tp(r), "keyrevoke")]),
    "whatif.first_batch8.recorded_to_first_revoke": ("whatif", lambda r: [
        recorded_to_first_revoke(p["8"]) for p in _whatif(r, "first_batch") if "8" in p]),
    "whatif.first_batch8.launch_to_first_revoke": ("whatif", lambda r: [
        p["8"]["extra"]["sim"]["first_revoke_request_after"] for p in _whatif(r, "first_batch") if "8" in p]),
    # section 4: recovery
    "recovery.added_seconds": ("recovery", lambda r: [
        p["killed"]["seconds"] - p["base"]["seconds"] for p in r.get("recovery") or []]),
    "recovery.base_seconds": ("recovery", lambda r: [p["base"]["seconds"] for p in r.get("recovery") or []]),
    "recovery.killed_seconds": ("recovery", lambda r: [p["killed"]["seconds"] for p in r.get("recovery") or []]),
    "recovery.killed_after": ("recovery", lambda r: [
        p["killed"]["extra"].get("killed_after") for p in r.get("recovery") or []]),
    "recovery.all_confirmed": ("recovery", lambda r: [
        float(p["killed"]["confirmed"] == p["killed"]["keys"]) for p in r.get("recovery") or []]),
    "recovery.keys_logged_twice": ("recovery", lambda r: [
        p["killed"]["extra"].get("keys_logged_twice") for p in r.get("recovery") or []]),
    # section 5: memory at the throughput size (the larger sizes are per scale run, below)
    "memory.throughput.worker_peak_rss_mib": ("throughput", lambda r: [
        x["extra"]["worker_peak_rss_mib"] for x in kind(_tp(r), "keyrevoke")]),
    # the heartbeat what-if: on top of pooled objects (first measurements), or of the product as it is
    "whatif.heartbeat.gain": ("whatif", lambda r: (
        ratios(_whatif(r, "throughput"), "keyrevoke+pool+heartbeat", "keyrevoke+pool")
        or ratios(_whatif(r, "throughput"), "keyrevoke+heartbeat", "keyrevoke"))),
    # the profiles (shares of the worker's or the script's CPU, by area); keyrevoke+pool is the pooled what-if
    # profile of the first measurements, read by bench/before.py
    **_profile_figures("keyrevoke", {"ccxt_objects": "ccxt exchange object"}),
    **_profile_figures("plain", {"ccxt_objects": "ccxt exchange object"}),
    **_profile_figures("keyrevoke+pool", {**_WORKER_AREAS, "heartbeats": "activity heartbeats"}),
    **_profile_figures("keyrevoke", _WORKER_AREAS),
}  # fmt: skip


def _scale_figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for keys, run in scale_runs(results).items():
        section = f"scales/{keys}"
        h = run["extra"].get("history") or {}
        values: dict[str, float | None] = {
            "keys": run["keys"],
            "confirmed": run["confirmed"],
            "completed": 1.0 if run["extra"].get("completed", True) else 0.0,
            "keys_per_second": run["keys_per_second"],
            "worker_peak_rss_mib": run["extra"]["worker_peak_rss_mib"],
            "steady_rss_mib": steady_rss(run),
            "max_events": h.get("max_events"),
            "max_payload_kb": h["max_payload"] / 1024 if "max_payload" in h else None,
        }
        for name, value in values.items():
            if value is not None:
                out[f"scale.{keys}.{name}"] = {"values": [value], "section": section}
    return out


def compute(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure the results hold: ``{name: {"values": [...], "section": results key}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, (section, values_of) in FIGURES.items():
        try:
            values = [v for v in values_of(results) if v is not None]
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            values = []
        if values:
            out[name] = {"values": values, "section": section}
    out.update(_scale_figures(results))
    return out
