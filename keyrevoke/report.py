"""The evidence report: every key of an incident, its end state and how it got there, no secrets."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from keyrevoke.ledger import KeyStatus, Ledger
from keyrevoke.states import NEEDS_HUMAN


def build_report(ledger: Ledger, incident_id: str) -> dict[str, Any]:
    """The report as one JSON-ready document: the incident, counts per venue, each key, the events."""
    record = ledger.require_incident(incident_id)
    keys = list(ledger.key_statuses(incident_id))
    counts = ledger.counts(incident_id)
    return {
        "incident_id": incident_id,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "scope": {"venues": list(record.venues) or "all", "owners": record.owners or "all"},
        "totals": _totals(counts),
        "venues": counts,
        "needs_human": sorted(k.key_id for k in keys if k.state in NEEDS_HUMAN),
        "keys": [asdict(k) for k in keys],
        "events": ledger.events(incident_id),
    }


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for per_state in counts.values():
        for state, count in per_state.items():
            totals[state] = totals.get(state, 0) + count
    totals["keys"] = sum(v for k, v in totals.items() if k != "keys")
    return totals


def write_report(ledger: Ledger, incident_id: str, folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` (everything) and ``report.csv`` (a line per key) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report(ledger, incident_id)
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    csv_path = folder / "report.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(KeyStatus)])
        writer.writeheader()
        writer.writerows(report["keys"])
    return json_path, csv_path
