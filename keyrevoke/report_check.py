"""Checking an evidence report in one stream: signature, hash chain, and keys that follow from events.

``verify_report`` reads ``report.json`` a line at a time (its layout is fixed, see
``keyrevoke.report``) and raises :class:`ReportDoesNotHold` naming the first thing that does not
hold. Each key's state as the events say it is kept in a temporary SQLite file rather than in
memory, so a report of a million keys is checked in constant memory.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyrevoke.evidence import GENESIS, ChainChecker, state_after
from keyrevoke.report import FILES, HEADER_FIELDS, KEY_FIELDS, measures_of, signature_path, totals_of
from keyrevoke.report_signature import REPORT_FORMAT, ReportDoesNotHold, read_signature
from keyrevoke.safe_text import csv_row
from keyrevoke.signing import public_key_text
from keyrevoke.states import KeyState

#: a line of report.json longer than this is not one keyrevoke wrote
MAX_LINE = 16 * 1024 * 1024
_STATES = frozenset(s.value for s in KeyState)
_BATCH = 2000


@dataclass(frozen=True)
class ChainAnchor:
    """A chain head recorded outside the ledger (the incident workflow's result in Temporal)."""

    length: int
    head: str
    where: str


@dataclass(frozen=True)
class ReportCheck:
    """What a report that holds says."""

    incident_id: str
    events: int
    keys: int
    may_still_work: int
    signed_by: str | None  # the public key the signature verified with; None when not checked
    files_signed: tuple[str, ...]  # the files whose digest matched the signed one
    anchored: bool  # the chain head matched the one recorded outside the ledger


def read_incident_id(path: Path) -> str:
    """The incident id from a report's header, reading only its first lines."""
    for number, name, value in _header_lines(path):
        if name == "incident_id":
            if not isinstance(value, str):
                raise ReportDoesNotHold(f"{path}:{number}: incident_id is not a string")
            return value
    raise ReportDoesNotHold(f"{path}: no incident_id in the report's header")


def verify_report(
    path: Path,
    public_key: Ed25519PublicKey | None,
    *,
    signature: Path | None = None,
    anchor: ChainAnchor | None = None,
) -> ReportCheck:
    """Check ``path`` (a report.json); ``public_key`` None skips the signature (the caller said so)."""
    statement = None
    signed: list[str] = []
    if public_key is not None:
        statement = read_signature(signature or signature_path(path), public_key)
        for name, digest in statement.digests.items():
            target = path if name == "report.json" else path.with_name(name)
            if name != "report.json" and not target.exists():
                continue  # a report may travel without its CSV or HTML; report.json is what counts
            if _sha256(target) != digest:
                raise ReportDoesNotHold(f"{target}: differs from the signed {name} (changed after it was signed)")
            signed.append(name)
    with tempfile.TemporaryDirectory(prefix="keyrevoke-verify-") as scratch:
        result = _Checker(path, Path(scratch) / "states.db", anchor).run()
    if statement is not None and statement.incident_id != result.incident_id:
        raise ReportDoesNotHold(f"{path}: the signature is for incident {statement.incident_id!r}, not this one")
    return ReportCheck(
        incident_id=result.incident_id,
        events=result.events,
        keys=result.keys,
        may_still_work=result.may_still_work,
        signed_by=public_key_text(public_key) if public_key else None,
        files_signed=tuple(n for n in FILES if n in signed),
        anchored=anchor is not None,
    )


def _sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise ReportDoesNotHold(f"{path}: cannot read it ({error.strerror or error})") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, refusing what keyrevoke never writes: huge lines, non-UTF-8."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ReportDoesNotHold(f"{path}: cannot read it ({error.strerror or error})") from None
    with handle:
        number = 0
        while True:
            raw = handle.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE:
                raise ReportDoesNotHold(f"{path}:{number}: a line longer than {MAX_LINE} bytes: not a keyrevoke report")
            try:
                yield number, raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError:
                raise ReportDoesNotHold(f"{path}:{number}: not UTF-8 text: not a keyrevoke report") from None


def _value(path: Path, number: int, text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ReportDoesNotHold(f"{path}:{number}: nested too deeply: not a keyrevoke report") from None
    except ValueError:
        raise ReportDoesNotHold(
            f"{path}:{number}: not in the layout of a keyrevoke report (one JSON value per line)"
        ) from None


def _member(path: Path, number: int, text: str) -> tuple[str, Any]:
    """A ``"name":value,`` line as (name, value); ``value`` is ``[`` for an array that opens there."""
    if text.endswith(":["):
        name = _value(path, number, text[:-2])
        if isinstance(name, str):
            return name, "["
    member = _value(path, number, "{" + text.removesuffix(",") + "}")
    if not isinstance(member, dict) or len(member) != 1:
        raise ReportDoesNotHold(f"{path}:{number}: not in the layout of a keyrevoke report (one field per line)")
    [(name, value)] = member.items()
    return str(name), value


def _header_lines(path: Path) -> Iterator[tuple[int, str, Any]]:
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise ReportDoesNotHold(f"{path}: empty: not a keyrevoke report")
    if first[1] != "{":
        raise ReportDoesNotHold(
            f"{path}:1: not in the layout of a keyrevoke report (written by `keyrevoke incident report`)"
        )
    for number, text in lines:
        name, value = _member(path, number, text)
        yield number, name, value
        if value == "[":
            return


@dataclass(frozen=True)
class _Result:
    incident_id: str
    events: int
    keys: int
    may_still_work: int


class _Checker:
    """One pass over report.json; each key's state per its events goes to a scratch SQLite file."""

    def __init__(self, path: Path, scratch: Path, anchor: ChainAnchor | None) -> None:
        self.path = path
        self.anchor = anchor
        self.db = sqlite3.connect(scratch, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE said (key_id TEXT PRIMARY KEY, venue TEXT, state TEXT, n INTEGER)")
        self.db.execute("CREATE TABLE listed (key_id TEXT PRIMARY KEY)")
        self.db.execute("BEGIN")

    def fail(self, where: int | None, message: str) -> ReportDoesNotHold:
        return ReportDoesNotHold(f"{self.path}{f':{where}' if where else ''}: {message}")

    def run(self) -> _Result:
        try:
            return self._run()
        finally:
            self.db.close()

    def _run(self) -> _Result:
        lines = _lines(self.path)
        header: dict[str, Any] = {}
        first = next(lines, None)
        if first is None:
            raise self.fail(None, "empty: not a keyrevoke report")
        if first[1] != "{":
            raise self.fail(1, "not in the layout of a keyrevoke report (written by `keyrevoke incident report`)")
        number = 1
        for number, text in lines:
            name, value = _member(self.path, number, text)
            if value == "[":
                if name != "events":
                    raise self.fail(number, f"expected the events after the header, found {name!r}")
                break
            if name not in HEADER_FIELDS or name in header:
                raise self.fail(number, f"unexpected header field {name!r}")
            header[name] = value
        else:
            raise self.fail(number, "ends before its event log")
        self._check_header(header, number)
        incident_id: str = header["incident_id"]
        events, last_line = self._events(lines, incident_id)
        opened = next(lines, None)
        if opened is None or opened[1] != '"keys":[':
            raise self.fail(last_line + 1, "expected the keys table after the event log")
        counts, keys, last_line = self._keys(lines)
        closing = next(lines, None)
        if closing is None or closing[1] != "}" or next(lines, None) is not None:
            raise self.fail(last_line + 1, "something follows the keys table: not in the layout of a keyrevoke report")
        self._check_summary(header, events, counts)
        return _Result(incident_id, events, keys, header["measures"]["may_still_work"])

    def _check_header(self, header: dict[str, Any], number: int) -> None:
        missing = [name for name in HEADER_FIELDS if name not in header]
        if missing:
            raise self.fail(number, f"the header lacks {', '.join(missing)}")
        if header["format"] != REPORT_FORMAT:
            raise self.fail(
                None, f"format {header['format']!r}, not {REPORT_FORMAT} (re-run `keyrevoke incident report`)"
            )
        if not isinstance(header["incident_id"], str):
            raise self.fail(None, "incident_id is not a string")
        for name in ("chain", "totals", "venues", "measures"):
            if not isinstance(header[name], dict):
                raise self.fail(None, f"{name} is not an object")

    def _events(self, lines: Iterator[tuple[int, str]], incident_id: str) -> tuple[int, int]:
        chain = ChainChecker()
        number = 0
        pending: list[tuple[str, str, str, int]] = []
        self.planned: dict[str, Any] | None = None
        for number, text in lines:
            if text in ("],", "]"):
                break
            event = _value(self.path, number, text.removesuffix(","))
            if not isinstance(event, dict):
                raise self.fail(number, "an event is not a JSON object")
            broken = chain.add(event)
            if broken is not None:
                raise self.fail(number, f"the event chain breaks at {broken}")
            n = event["n"]
            if event["incident_id"] != incident_id:
                raise self.fail(number, f"event {n} belongs to incident {event['incident_id']!r}, not {incident_id!r}")
            if n == 1 and event["kind"] != "incident.created":
                raise self.fail(number, "event 1 is not the incident's creation: the log's start is missing")
            if self.anchor is not None and n == self.anchor.length and event["hash"] != self.anchor.head:
                raise self.fail(number, f"event {n}'s hash differs from the chain head recorded in {self.anchor.where}")
            if event["kind"] == "incident.planned":
                self.planned = self._planned(number, event["detail"])
            state = state_after(event["kind"])
            if state is not None and event["key_id"]:
                pending.append((event["key_id"], event["venue"], state, n))
                if len(pending) >= _BATCH:
                    self._said(pending)
        else:
            raise self.fail(number, "ends inside the event log")
        self._said(pending)
        self.head, self.length = chain.head, chain.length
        if self.anchor is not None and chain.length < self.anchor.length:
            raise self.fail(
                number,
                f"the event log has {chain.length} events; {self.anchor.where} recorded {self.anchor.length}: "
                "events were removed",
            )
        return chain.length, number

    def _planned(self, number: int, detail: str) -> dict[str, Any]:
        try:
            planned = json.loads(detail)
        except (ValueError, RecursionError):
            planned = None
        if not isinstance(planned, dict):
            raise self.fail(number, "the incident.planned event's detail is not its keys per venue")
        return planned

    def _said(self, pending: list[tuple[str, str, str, int]]) -> None:
        self.db.executemany(
            "INSERT INTO said (key_id, venue, state, n) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key_id) DO UPDATE SET venue = excluded.venue, state = excluded.state, n = excluded.n",
            pending,
        )
        pending.clear()

    def _keys(self, lines: Iterator[tuple[int, str]]) -> tuple[dict[str, dict[str, int]], int, int]:
        counts: dict[str, dict[str, int]] = {}
        beside = self.path.with_name("report.csv")
        with contextlib.ExitStack() as stack:
            table = stack.enter_context(_CsvTable(beside)) if beside.is_file() else None
            return self._key_lines(lines, counts, table)

    def _key_lines(
        self, lines: Iterator[tuple[int, str]], counts: dict[str, dict[str, int]], table: _CsvTable | None
    ) -> tuple[dict[str, dict[str, int]], int, int]:
        keys = 0
        number = 0
        for number, text in lines:
            if text == "]":
                break
            key = _value(self.path, number, text.removesuffix(","))
            if not isinstance(key, dict) or tuple(key) != KEY_FIELDS:
                raise self.fail(number, f"a key's line does not have the fields {', '.join(KEY_FIELDS)}")
            key_id, venue, state = key["key_id"], key["venue"], key["state"]
            if not all(isinstance(v, str) for v in (key_id, venue, state)) or state not in _STATES:
                raise self.fail(number, f"key {key_id!r}: key_id, venue or state is not valid")
            try:
                self.db.execute("INSERT INTO listed (key_id) VALUES (?)", (key_id,))
            except sqlite3.IntegrityError:
                raise self.fail(number, f"key {key_id} is listed twice") from None
            row = self.db.execute("SELECT venue, state, n FROM said WHERE key_id = ?", (key_id,)).fetchone()
            said_state = row[1] if row else KeyState.PENDING.value
            if state != said_state:
                source = f"its last event ({row[2]}) says {said_state}" if row else "no event moved it from pending"
                raise self.fail(number, f"key {key_id}: the keys table says {state}, but {source}")
            if row and row[0] != venue:
                raise self.fail(number, f"key {key_id}: the keys table says venue {venue}, its events say {row[0]}")
            if table is not None:
                table.check(key_id, [key[name] for name in KEY_FIELDS])
            per = counts.setdefault(venue, {})
            per[state] = per.get(state, 0) + 1
            keys += 1
        else:
            raise self.fail(number, "ends inside the keys table")
        if table is not None:
            table.end()
        unlisted = self.db.execute(
            "SELECT key_id, n FROM said WHERE key_id NOT IN (SELECT key_id FROM listed) ORDER BY n LIMIT 1"
        ).fetchone()
        if unlisted:
            raise self.fail(None, f"key {unlisted[0]} has events (event {unlisted[1]}) but is not in the keys table")
        return counts, keys, number

    def _check_summary(self, header: dict[str, Any], events: int, counts: dict[str, dict[str, int]]) -> None:
        chain = header["chain"]
        if chain.get("length") != events or chain.get("head") != (self.head if events else GENESIS):
            raise self.fail(
                None, f"the header's chain ({chain.get('length')} events) is not the event log's ({events} events)"
            )
        venues = {venue: dict(sorted(per.items())) for venue, per in sorted(counts.items())}
        if header["venues"] != venues:
            wrong = sorted(set(header["venues"]) ^ set(venues)) or [
                v for v in venues if header["venues"].get(v) != venues[v]
            ]
            raise self.fail(None, f"the keys per venue and state (venue {wrong[0]}) do not follow from the keys table")
        totals = totals_of(venues)
        if header["totals"] != totals:
            raise self.fail(None, "the totals do not follow from the keys table")
        if header["measures"] != measures_of(totals):
            raise self.fail(None, "the measures (finished, may still work) do not follow from the totals")
        planned = self.planned or {}
        per_venue = {venue: sum(per.values()) for venue, per in venues.items()}
        if {v: n for v, n in planned.items() if n} != per_venue:
            raise self.fail(None, "the keys table does not hold the keys the incident planned (incident.planned event)")


class _CsvTable:
    """report.csv read alongside report.json's keys: each row must be that key's line, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE))  # a venue's answer may be long
        self._handle = path.open(encoding="utf-8", newline="")
        self._rows = csv.reader(self._handle)
        self._line = 1
        header = self._next()
        if header is None or tuple(header) != KEY_FIELDS:
            raise ReportDoesNotHold(f"{path}:1: the header is not {','.join(KEY_FIELDS)}")

    def __enter__(self) -> _CsvTable:
        return self

    def __exit__(self, *_: object) -> None:
        self._handle.close()

    def _next(self) -> list[str] | None:
        try:
            row = next(self._rows, None)
        except (csv.Error, UnicodeDecodeError) as error:
            raise ReportDoesNotHold(f"{self.path}:{self._line}: not a CSV line keyrevoke wrote ({error})") from None
        self._line = self._rows.line_num
        return row

    def check(self, key_id: str, values: list[Any]) -> None:
        row = self._next()
        if row is None:
            raise ReportDoesNotHold(f"{self.path}: ends before key {key_id} of report.json")
        expected = ["" if value is None else str(value) for value in csv_row(values)]
        if row != expected:
            raise ReportDoesNotHold(f"{self.path}:{self._line}: differs from key {key_id}'s line in report.json")

    def end(self) -> None:
        if self._next() is not None:
            raise ReportDoesNotHold(f"{self.path}:{self._line}: a line for a key that report.json does not list")
