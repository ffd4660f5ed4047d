"""Showing an incident's progress: counts by state per venue, as a table or JSON."""

from __future__ import annotations

from typing import Any

from rich.progress_bar import ProgressBar
from rich.table import Table

from keyrevoke.states import DISPLAY_ORDER, FINAL_STATES, NEEDS_HUMAN


def done_ratio(counts: dict[str, dict[str, int]]) -> float:
    total = sum(sum(per.values()) for per in counts.values())
    if total == 0:
        return 0.0
    ended = sum(n for per in counts.values() for state, n in per.items() if state in FINAL_STATES)
    return ended / total


def progress_table(incident_id: str, counts: dict[str, dict[str, int]], workflow_status: str) -> Table:
    """A table with a row per venue and a column per state that has keys, plus totals."""
    states = [s.value for s in DISPLAY_ORDER if any(per.get(s.value) for per in counts.values())]
    table = Table(title=f"incident {incident_id} — workflow {workflow_status} — {done_ratio(counts):.0%} done")
    table.add_column("venue")
    for state in states:
        style = "bold red" if state in NEEDS_HUMAN else ("green" if state == "confirmed" else "")
        table.add_column(state, justify="right", style=style)
    table.add_column("total", justify="right")
    table.add_column("done")
    totals = dict.fromkeys(states, 0)
    for venue, per in counts.items():
        for state in states:
            totals[state] += per.get(state, 0)
        table.add_row(venue, *(str(per.get(s, 0)) for s in states), str(sum(per.values())), _bar({venue: per}))
    table.add_row("all", *(str(totals[s]) for s in states), str(sum(totals.values())), _bar(counts), style="bold")
    return table


def _bar(counts: dict[str, dict[str, int]]) -> Table:
    """A progress bar with its percentage: the share of keys that reached a final state."""
    ratio = done_ratio(counts)
    cell = Table.grid(padding=(0, 1))
    cell.add_row(ProgressBar(total=100, completed=ratio * 100, width=24), f"{ratio:4.0%}")
    return cell


def progress_line(counts: dict[str, dict[str, int]]) -> str:
    """One line for logs and non-terminal output."""
    parts = []
    for venue, per in counts.items():
        states = ", ".join(f"{state} {per[state]}" for state in (s.value for s in DISPLAY_ORDER) if per.get(state))
        parts.append(f"{venue}: {states}")
    return f"{done_ratio(counts):6.1%} done | " + " | ".join(parts)


def progress_json(incident_id: str, counts: dict[str, dict[str, int]], workflow_status: str) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "workflow": workflow_status,
        "done_ratio": round(done_ratio(counts), 4),
        "venues": counts,
    }
