"""Which run of the harness produced which part of the saved results, and on which code.

A partial run (``--only``) merges its sections into the saved results, so one results file mixes
runs made on different code. Each run therefore leaves, beside its data:

- an entry in ``runs_log``: the command, how long it took, the sections it produced, the code it ran
  (revision and source digest) and the product features that code had (``code_features``);
- for every section it produced, ``provenance[section]``: the same run's command, code and features.
  Sections are the top-level result keys (``throughput``, ``big``, ``rate``, ...), and one per scale
  run (``scales/<keys>``), since runs of different sizes are kept side by side.

Results saved before this was recorded get it derived (``backfill``) from what they hold: a hand-written
``runs_log``, the ``partial_runs`` that the merge recorded, and the few facts in ``LEGACY_RUNS``.
"""

from __future__ import annotations

import copy
import shlex
from typing import Any

#: result keys that are not a section's data
NOT_SECTIONS = frozenset(
    {
        "plan",
        "machine",
        "concurrency",
        "heartbeat_timeout",
        "elapsed_seconds",
        "partial_runs",
        "command",
        "scale",
        "runs_log",
        "superseded",
        "provenance",
    }
)

#: Runs saved before the harness recorded their code, with what is known of it. The 100,000-key scale
#: run was started at 15:50 from a snapshot of the source; while it ran, every Python file of that
#: snapshot was compared with commit e9d6595 and found identical (the escalation packet's SQL read,
#: change 5, in; the pooled ccxt objects, the pacer's send window, the small first batch and the 10 s
#: heartbeat timeout not yet). Keyed by the command the merge wrote into ``partial_runs``.
LEGACY_RUNS: dict[str, dict[str, Any]] = {
    "python -m bench run --scale-keys 100000 --only scale": {
        "code": "e9d6595 (recorded afterwards: the run's source snapshot is identical to that commit)",
        "features": {
            "exchange_pool": False,
            "pacer_send_window": False,
            "pacer_counts_until_answer": False,
            "pacer_urgent_first": False,
            "first_batch_size": None,
            "escalation_sql": True,
            "group_commit": False,
            "hook_kept_open": False,
            "telemetry_off_skips_spans": False,
        },
        # the merge adds each run's elapsed seconds to the saved ones; these were saved before it
        "elapsed_before": 5366.559988737106,
    }
}


def code_features() -> dict[str, Any]:
    """What the product code of this process has, of the changes the benchmark's findings led to."""
    import importlib.util
    import inspect

    from activities import pacing
    from activities.venues.exchanges import ExchangeFactory
    from keyrevoke.ledger.store import Ledger
    from keyrevoke.settings import Settings

    def has(module: str, name: str) -> bool:
        try:
            imported = importlib.import_module(module)
        except ImportError:
            return False
        return hasattr(imported, name)

    hook = importlib.import_module("activities.platform_hook")
    return {
        "exchange_pool": hasattr(ExchangeFactory, "release"),
        "pacer_send_window": hasattr(pacing.VenuePacer, "_send_window"),
        "pacer_counts_until_answer": hasattr(pacing.VenuePacer, "request"),
        "pacer_urgent_first": hasattr(pacing.VenuePacer, "request")
        and "priority" in inspect.signature(pacing.VenuePacer.request).parameters,
        "first_batch_size": getattr(Settings(), "first_batch_size", None),
        "escalation_sql": hasattr(Ledger, "venue_key_statuses"),
        "group_commit": importlib.util.find_spec("activities.ledger_writer") is not None,
        "hook_kept_open": hasattr(getattr(hook, "FileHook", None), "close"),
        "telemetry_off_skips_spans": has("keyrevoke.observability.calls", "tracing_on"),
    }


def sections_of(results: dict[str, Any]) -> list[str]:
    """The sections a results dict holds: its data keys, and ``scales/<keys>`` per scale run."""
    out = [key for key in results if key not in NOT_SECTIONS and key != "scales"]
    out += [f"scales/{keys}" for keys in sorted(results.get("scales") or {}, key=int)]
    return out


def _sections_of_command(command: str, plan: dict[str, Any] | None, present: list[str]) -> list[str]:
    """The sections a legacy command produced (``--only`` names them; without it, every one present)."""
    tokens = shlex.split(command)
    only = tokens[tokens.index("--only") + 1] if "--only" in tokens[:-1] else None
    scale_keys = tokens[tokens.index("--scale-keys") + 1] if "--scale-keys" in tokens[:-1] else None
    if scale_keys is None and plan:
        scale_keys = str(plan.get("scale_keys"))
    if only is None:
        return list(present)
    out = []
    for name in only.split(","):
        out.append(f"scales/{scale_keys}" if name == "scale" else name)
    return [s for s in out if s in present]


def backfill(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with ``runs_log`` and ``provenance`` complete (a copy; derived if not recorded)."""
    results = copy.deepcopy(results)
    if results.get("provenance") is not None:
        return results
    present = sections_of(results)
    heartbeat = results.get("heartbeat_timeout")
    log: list[dict[str, Any]] = []
    for entry in results.get("runs_log") or []:
        log.append({**entry, "sections": _sections_of_command(entry["command"], None, present)})
    for partial in results.get("partial_runs") or []:
        sections = _sections_of_command(partial["command"], partial.get("plan"), present)
        described = [e for e in log if set(e["sections"]) == set(sections)]
        if described:
            # a hand-written entry for a run of LEGACY_RUNS: what is known of its code's features still holds
            legacy = LEGACY_RUNS.get(partial["command"])
            if legacy and described[-1].get("features") is None:
                described[-1]["features"] = legacy["features"]
            continue
        known = LEGACY_RUNS.get(partial["command"], {})
        minutes = None
        if "elapsed_before" in known and results.get("elapsed_seconds"):
            minutes = (results["elapsed_seconds"] - known["elapsed_before"]) / 60
        log.append(
            {
                "command": partial["command"],
                "minutes": minutes,
                "what": ", ".join(sections),
                "code": known.get("code", "not recorded in the results"),
                "features": known.get("features"),
                "sections": sections,
            }
        )
    if not log:
        log.append(
            {
                "command": results.get("command", "python -m bench run"),
                "minutes": (results.get("elapsed_seconds") or 0) / 60,
                "what": "every section",
                "code": (results.get("machine") or {}).get("revision", "not recorded"),
                "sections": present,
            }
        )
    for entry in log:
        # the runs that did not record theirs all ran with the one batch heartbeat timeout saved
        entry.setdefault("heartbeat_timeout", heartbeat)
        entry.setdefault("features", None)
    results["runs_log"] = log
    results["provenance"] = _provenance(log)
    return results


def _provenance(log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(log):
        for section in entry.get("sections", []):
            out[section] = {
                "run": index,
                "command": entry["command"],
                "code": entry["code"],
                "features": entry.get("features"),
                "heartbeat_timeout": entry.get("heartbeat_timeout"),
            }
    return out


def run_entry(command: str, results: dict[str, Any]) -> dict[str, Any]:
    """The ``runs_log`` entry of a run that just produced ``results`` (before any merge)."""
    machine = results.get("machine") or {}
    sections = sections_of(results)
    return {
        "command": command,
        "minutes": (results.get("elapsed_seconds") or 0) / 60,
        "what": ", ".join(sections),
        "code": machine.get("revision", "not recorded"),
        "features": machine.get("features"),
        "heartbeat_timeout": results.get("heartbeat_timeout"),
        "load_at_start": machine.get("load_at_start"),
        "sections": sections,
    }


def record(previous: dict[str, Any] | None, results: dict[str, Any], entry: dict[str, Any]) -> None:
    """Set ``results``' ``runs_log`` and ``provenance``: the earlier runs' (if merged), then this one's."""
    log = list(backfill(previous)["runs_log"]) if previous else []
    log.append(entry)
    results["runs_log"] = log
    results["provenance"] = _provenance(log)


def source(results: dict[str, Any], section: str) -> dict[str, Any] | None:
    """Where ``section``'s data came from, from results already through ``backfill`` (None if unknown)."""
    found: dict[str, Any] | None = (results.get("provenance") or {}).get(section)
    return found
