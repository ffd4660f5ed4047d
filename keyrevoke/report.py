"""The evidence report: every key of an incident, its end state and how it got there, no secrets.

``report.json`` holds everything: the incident, its totals, the hash-chained event log and every
key's line. ``report.csv`` has a line per key; ``report.html`` is what a person opens first: the
summary and the keys that may still work (capped; the rest are in the CSV). ``report.json.sig`` signs
all three (``keyrevoke.report_signature``).

All of it is written in one pass over one snapshot of the ledger, a page of rows at a time, with
each file's SHA-256 computed as its bytes are written: memory stays flat whatever the number of keys.
``report.json`` has a fixed layout, one JSON value per line, so it is checked in a stream too
(``keyrevoke.report_check``)::

    {
    "format":"keyrevoke-report/2",
    "incident_id":"...",              ... one header field per line (see HEADER_FIELDS) ...
    "events":[
    {one event},
    {one event}
    ],
    "keys":[
    {one key},
    {one key}
    ]
    }
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keyrevoke.ledger import KeyStatus, Ledger
from keyrevoke.private_files import open_private, private_dir, write_private_text
from keyrevoke.report_signature import REPORT_FORMAT, SIGNATURE_SUFFIX, SignedStatement, signature_document
from keyrevoke.safe_text import csv_row
from keyrevoke.states import DISPLAY_ORDER, MAY_STILL_WORK, NEXT_STEP, Measures

#: report.json's header fields, in their order (each on its own line)
HEADER_FIELDS = (
    "format",
    "incident_id",
    "created_at",
    "created_by",
    "scope",
    "written_at",
    "chain",
    "totals",
    "venues",
    "measures",
)
KEY_FIELDS = tuple(f.name for f in fields(KeyStatus))
#: how many keys that may still work report.html lists (all of them are in report.csv)
HTML_KEY_LIMIT = 1000
FILES = ("report.json", "report.csv", "report.html")

_MAY_STILL_WORK = tuple(s.value for s in DISPLAY_ORDER if s in MAY_STILL_WORK)


def compact(value: Any) -> str:
    """One JSON value on one line, as report.json holds it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def totals_of(venues: dict[str, dict[str, int]]) -> dict[str, int]:
    """Keys per state over every venue, and ``keys``: all of them."""
    totals: dict[str, int] = {}
    for per_state in venues.values():
        for state, count in per_state.items():
            totals[state] = totals.get(state, 0) + count
    totals = dict(sorted(totals.items()))
    totals["keys"] = sum(totals.values())
    return totals


def measures_of(totals: dict[str, int]) -> dict[str, int]:
    """The two numbers every view shows (and what they are made of), from the totals."""
    measures = Measures.from_counts({state: n for state, n in totals.items() if state != "keys"})
    return {
        "total": measures.total,
        "finished": measures.finished,
        "handled": measures.handled,
        "may_still_work": measures.may_still_work,
    }


class _HashingFile:
    """A private file that hashes what is written to it; text goes out as UTF-8 through a buffer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self._handle: IO[bytes] = open_private(path, "wb")
        self._buffer: list[bytes] = []
        self._buffered = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.digest.update(data)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= 1 << 16:
            self.flush()

    def flush(self) -> None:
        self._handle.write(b"".join(self._buffer))
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> str:
        """Flush, sync and close; returns the file's SHA-256 (hex)."""
        self.flush()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return self.digest.hexdigest()


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    csv: Path
    html: Path
    signature: Path
    keys: int
    events: int
    may_still_work: int

    def paths(self) -> tuple[Path, Path, Path, Path]:
        return self.json, self.csv, self.html, self.signature


def write_report(ledger: Ledger, incident_id: str, folder: Path, signing_key: Ed25519PrivateKey) -> ReportFiles:
    """Write report.json, report.csv, report.html and report.json.sig into ``folder``, streamed.

    The files are written under temporary names and renamed into place once all are signed, so a
    report interrupted half-way never sits beside an old signature.
    """
    private_dir(folder)
    written_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    parts = {name: _HashingFile(folder / f".{name}.partial") for name in FILES}
    try:
        with ledger.snapshot(incident_id) as snapshot:
            record = snapshot.incident()
            head, length = snapshot.chain_head()
            venues = snapshot.counts()
            totals = totals_of(venues)
            measures = measures_of(totals)
            header: dict[str, Any] = {
                "format": REPORT_FORMAT,
                "incident_id": incident_id,
                "created_at": record.created_at,
                "created_by": record.created_by,
                "scope": {"venues": list(record.venues) or "all", "owners": record.owners or "all"},
                "written_at": written_at,
                "chain": {"length": length, "head": head},
                "totals": totals,
                "venues": venues,
                "measures": measures,
            }
            _write_html(
                parts["report.html"], header, snapshot.key_statuses(states=_MAY_STILL_WORK, limit=HTML_KEY_LIMIT)
            )
            report, table = parts["report.json"], parts["report.csv"]
            report.write("{\n" + "".join(f"{compact(name)}:{compact(header[name])},\n" for name in HEADER_FIELDS))
            events = _write_array(report, "events", snapshot.events())
            report.write(",\n")
            table.write(_csv_line(KEY_FIELDS))
            keys = 0
            report.write('"keys":[\n')
            for key in snapshot.key_statuses():
                line = asdict(key)
                report.write((",\n" if keys else "") + compact(line))
                table.write(_csv_line(csv_row(line[name] for name in KEY_FIELDS)))
                keys += 1
            report.write(("\n" if keys else "") + "]\n}\n")
        if events != length or keys != totals["keys"]:
            raise RuntimeError("the ledger snapshot changed while the report was written")  # a bug, not input
        digests = {name: parts[name].close() for name in FILES}
        for name in FILES:
            os.replace(parts[name].path, folder / name)
    except BaseException:
        for part in parts.values():
            part.path.unlink(missing_ok=True)
        raise
    signature = folder / ("report.json" + SIGNATURE_SUFFIX)
    write_private_text(signature, signature_document(SignedStatement(incident_id, digests), signing_key))
    return ReportFiles(
        folder / "report.json",
        folder / "report.csv",
        folder / "report.html",
        signature,
        keys=keys,
        events=events,
        may_still_work=measures["may_still_work"],
    )


def _write_array(out: _HashingFile, name: str, items: Any) -> int:
    out.write(f"{compact(name)}:[\n")
    count = 0
    for item in items:
        out.write((",\n" if count else "") + compact(item))
        count += 1
    out.write(("\n" if count else "") + "]")
    return count


def _csv_line(values: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


_KEY_COLUMNS = (
    "key_id",
    "venue",
    "owner",
    "account_id",
    "account_name",
    "fingerprint",
    "state",
    "revoked_at",
    "detail",
)


def _write_html(out: _HashingFile, header: dict[str, Any], keys: Any) -> None:
    """The page a person opens: what is left to do first, then the counts, then the keys still open."""
    esc = html.escape
    totals, measures = header["totals"], header["measures"]
    total = measures["total"]
    finished_pct = 100.0 * measures["finished"] / total if total else 100.0
    states = [s.value for s in DISPLAY_ORDER if totals.get(s.value)]
    open_states = [s for s in DISPLAY_ORDER if s in MAY_STILL_WORK and totals.get(s.value)]
    shown = min(measures["may_still_work"], HTML_KEY_LIMIT)
    verdict = (
        f'<p class="ok">Every key in scope is confirmed revoked or closed: {measures["handled"]} of {total}.</p>'
        if measures["may_still_work"] == 0
        else f'<p class="warn"><strong>{measures["may_still_work"]} of {total} keys may still work.</strong></p>'
    )
    out.write(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keyrevoke incident {esc(header["incident_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #999;padding:.2em .5em;text-align:left}}.warn{{color:#a00}}.ok{{color:#070}}</style>
</head><body>
<h1>Incident {esc(header["incident_id"])}</h1>
{verdict}
<p>Work finished on {measures["finished"]} of {total} keys ({finished_pct:.1f}%);
{measures["handled"]} confirmed revoked or closed; {measures["may_still_work"]} may still work.
Started {esc(header["created_at"])} by {esc(header["created_by"])}; report written {esc(header["written_at"])}.</p>
"""
    )
    if open_states:
        out.write("<h2>What to do next</h2><ul>\n")
        for state in open_states:
            out.write(
                f"<li><strong>{esc(state.value)}</strong> ({totals[state.value]}): {esc(NEXT_STEP[state])}</li>\n"
            )
        out.write("</ul>\n")
    out.write("<h2>Keys by state</h2>\n<table><tr><th>venue</th>")
    out.write("".join(f"<th>{esc(s)}</th>" for s in states) + "</tr>\n")
    for venue, per in header["venues"].items():
        out.write(f"<tr><td>{esc(venue)}</td>" + "".join(f"<td>{per.get(s, 0)}</td>" for s in states) + "</tr>\n")
    out.write("</table>\n")
    if measures["may_still_work"]:
        rest = (
            f" (the first {shown}; all {measures['may_still_work']} are in report.csv)"
            if measures["may_still_work"] > shown
            else ""
        )
        out.write(f'<h2 class="warn">Keys that may still work: {measures["may_still_work"]}{rest}</h2>\n<table><tr>')
        out.write("".join(f"<th>{c}</th>" for c in _KEY_COLUMNS) + "</tr>\n")
        for key in keys:
            line = asdict(key)
            out.write("<tr>" + "".join(f"<td>{esc(str(line[c] or ''))}</td>" for c in _KEY_COLUMNS) + "</tr>\n")
        out.write("</table>\n")
    out.write(
        f"""<p>Every key's record is in report.csv and report.json. Event log: {header["chain"]["length"]} events,
chain head <code>{esc(header["chain"]["head"])}</code>. The report is signed (report.json.sig):
<code>keyrevoke incident verify-report report.json --public-key PUB</code> checks it.</p>
</body></html>
"""
    )


def signature_path(report: Path) -> Path:
    """Where a report's detached signature is: beside it, with ``.sig`` added."""
    return report.with_name(report.name + SIGNATURE_SUFFIX)
