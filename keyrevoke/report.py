"""The evidence report: every key of an incident, its end state and how it got there, no secrets.

``report.json`` holds everything (with the hash-chained event log), ``report.csv`` a line per key,
``report.html`` a summary a person can read. ``verify_report`` re-checks a report's chain.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from keyrevoke.errors import InputError
from keyrevoke.evidence import ChainBreak, verify_chain
from keyrevoke.ledger import KeyStatus, Ledger
from keyrevoke.states import DISPLAY_ORDER, NEEDS_HUMAN
from keyrevoke.text_lines import read_json


def build_report(ledger: Ledger, incident_id: str) -> dict[str, Any]:
    """The report as one JSON-ready document: the incident, counts per venue, each key, the events."""
    record = ledger.require_incident(incident_id)
    keys = list(ledger.key_statuses(incident_id))
    counts = ledger.counts(incident_id)
    head, length = ledger.chain_head(incident_id)
    return {
        "incident_id": incident_id,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "scope": {"venues": list(record.venues) or "all", "owners": record.owners or "all"},
        "totals": _totals(counts),
        "venues": counts,
        "needs_human": sorted(k.key_id for k in keys if k.state in NEEDS_HUMAN),
        "chain": {"length": length, "head": head},
        "keys": [asdict(k) for k in keys],
        "events": ledger.events(incident_id),
    }


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for per_state in counts.values():
        for state, count in per_state.items():
            totals[state] = totals.get(state, 0) + count
    totals["keys"] = sum(totals.values())
    return totals


def write_report(ledger: Ledger, incident_id: str, folder: Path) -> tuple[Path, Path, Path]:
    """Write ``report.json``, ``report.csv`` and ``report.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report(ledger, incident_id)
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    csv_path = folder / "report.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(KeyStatus)])
        writer.writeheader()
        writer.writerows(report["keys"])
    html_path = folder / "report.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, csv_path, html_path


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: totals per venue, the keys a human must act on, every key's line."""
    esc = html.escape
    states = [s.value for s in DISPLAY_ORDER if report["totals"].get(s.value)]
    venue_rows = "".join(
        f"<tr><td>{esc(venue)}</td>" + "".join(f"<td>{per.get(s, 0)}</td>" for s in states) + "</tr>"
        for venue, per in report["venues"].items()
    )
    human = [k for k in report["keys"] if k["state"] in NEEDS_HUMAN]
    key_columns = (
        "key_id",
        "venue",
        "owner",
        "fingerprint",
        "state",
        "baseline_ok",
        "revoked_at",
        "ended_at",
        "detail",
    )

    def key_table(keys: list[dict[str, Any]]) -> str:
        head = "".join(f"<th>{c}</th>" for c in key_columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(str(k[c] or ''))}</td>" for c in key_columns) + "</tr>" for k in keys
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keyrevoke incident {esc(report["incident_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #999;padding:.2em .5em;text-align:left}}.warn{{color:#a00}}</style></head><body>
<h1>Incident {esc(report["incident_id"])}</h1>
<p>Started {esc(report["created_at"])} by {esc(report["created_by"])}.
{report["totals"].get("confirmed", 0)} of {report["totals"]["keys"]} keys confirmed revoked.
Event log: {report["chain"]["length"]} events, chain head <code>{esc(report["chain"]["head"])}</code>.</p>
<h2>Keys by state</h2>
<table><tr><th>venue</th>{"".join(f"<th>{esc(s)}</th>" for s in states)}</tr>{venue_rows}</table>
<h2 class="warn">Keys a human must act on ({len(human)})</h2>
{key_table(human) if human else "<p>None.</p>"}
<h2>Every key</h2>
{key_table(report["keys"])}
</body></html>
"""


def verify_report(path: Path) -> ChainBreak | None:
    """Re-check the event chain of a ``report.json``; None when it holds end to end."""
    report = read_json(path, "report")
    if not isinstance(report, dict) or not isinstance(report.get("events"), list):
        raise InputError(f"{path}: not a keyrevoke report (no event list)")
    events = report["events"]
    for number, event in enumerate(events, start=1):
        if not isinstance(event, dict):
            return ChainBreak(number, f"is a JSON {type(event).__name__}, not an event object")
    broken = verify_chain(events)
    if broken is not None:
        return broken
    chain = report.get("chain") or {}
    if not isinstance(chain, dict):
        return ChainBreak(len(events) + 1, "the report's chain summary is not an object")
    if chain.get("length") != len(events):
        return ChainBreak(
            len(events) + 1, f"the report lists {len(events)} events, its chain says {chain.get('length')}"
        )
    if events and chain.get("head") != events[-1]["hash"]:
        return ChainBreak(len(events), "the chain head does not match the last event")
    return None
