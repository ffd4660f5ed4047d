"""Showing an incident: a table on a terminal, plain lines anywhere else (pipes, logs, CI).

Both show the two measures side by side, per venue and in total: *work finished* (keyrevoke has
nothing left to do on a key) and *may still work* (the key is not proven dead nor closed by a person).
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from commander.situation import IncidentView, VenueView
from keyrevoke.states import DISPLAY_ORDER, NEEDS_HUMAN, Measures


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return _duration((datetime.now(UTC) - moment).total_seconds()) + " ago"


def _queue(venue: VenueView) -> str:
    if venue.queue is None:
        return "-"
    return f"{venue.queue.pollers} worker(s)" if venue.queue.served else "NO WORKER"


def _measures(m: Measures) -> str:
    return f"work finished {m.finished_ratio:.0%}, may still work {m.may_still_work}"


def headline(view: IncidentView) -> str:
    m = view.measures
    keys = f"{m.total} keys, {_measures(m)}" if m.total else "no keys planned yet" if not view.ended else "no keys"
    return f"incident {view.incident_id} — workflow {view.workflow_status}, phase {view.phase} — {keys}"


def view_table(view: IncidentView) -> Group:
    """The terminal view: a row per venue, a column per state that has keys, then both measures."""
    states = [s.value for s in DISPLAY_ORDER if any(v.counts.get(s.value) for v in view.venues)]
    table = Table(title=headline(view))
    table.add_column("venue")
    for state in states:
        style = "bold red" if state in NEEDS_HUMAN else ("green" if state == "confirmed" else "")
        table.add_column(state, justify="right", style=style)
    table.add_column("total", justify="right")
    table.add_column("finished", justify="right")
    table.add_column("may still work", justify="right", style="bold")
    table.add_column("phase")
    table.add_column("queue")
    table.add_column("last change")
    table.add_column("keys/s", justify="right")
    table.add_column("ETA", justify="right")
    for venue in view.venues:
        m = venue.measures
        table.add_row(
            venue.venue,
            *(str(venue.counts.get(s, 0)) for s in states),
            str(m.total),
            f"{m.finished_ratio:.0%}",
            Text(str(m.may_still_work), style="red" if m.may_still_work else "green"),
            venue.phase,
            _queue(venue),
            _ago(venue.last_change),
            f"{venue.keys_per_second:.1f}",
            _duration(venue.eta_seconds),
        )
    totals = view.state_totals
    m = view.measures
    table.add_row(
        "all",
        *(str(totals.get(s, 0)) for s in states),
        str(m.total),
        f"{m.finished_ratio:.0%}",
        str(m.may_still_work),
        view.phase,
        "",
        "",
        "",
        "",
        style="bold",
    )
    return Group(table, *(Text(note, style="yellow") for note in view.notes))


def view_lines(view: IncidentView, with_times: bool = True) -> list[str]:
    """The same view as plain lines: nothing cut to a terminal's width, one venue a line.

    Without ``with_times`` the parts that change with the clock alone are left out (for a watch that
    prints only when something changed).
    """
    lines = [headline(view)]
    for venue in view.venues:
        states = ", ".join(f"{s} {n}" for s, n in venue.counts.items())
        parts = [f"{venue.venue}: {states or 'no keys'}", _measures(venue.measures), f"phase {venue.phase}"]
        if venue.queue is not None:
            parts.append(f"queue {_queue(venue)}")
        if with_times and venue.last_change is not None:
            parts.append(f"last change {_ago(venue.last_change)}")
        if with_times and venue.keys_per_second:
            parts.append(f"{venue.keys_per_second:.1f} keys/s, ETA {_duration(venue.eta_seconds)}")
        lines.append("  " + " | ".join(parts))
    lines.extend(view.notes)
    return lines
