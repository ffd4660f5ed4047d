"""Reading inventory files (CSV or JSON lines) into validated rows.

A row that cannot be used becomes an ``InventoryRowError`` naming the file, the line and the reason;
the other rows go on. Secrets stay inside ``InventoryRow`` (whose repr hides them) until the ledger
seals them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from keyrevoke.crypto import fingerprint
from keyrevoke.csv_records import csv_records
from keyrevoke.errors import InputError, InventoryRowError
from keyrevoke.text_lines import TextLine, text_lines
from keyrevoke.venue_fields import ACCOUNT_ID, ACCOUNT_NAME, account_of, legacy_field, needed_field, venue_parameter
from keyrevoke.venues import methods_for

COLUMNS: tuple[str, ...] = (
    "key_id",
    "venue",
    "owner",
    "account_id",
    "account_name",
    "email",
    "api_key",
    "secret",
    "passphrase",
    "method",
    "priority",
)
REQUIRED: tuple[str, ...] = ("key_id", "venue", "owner", "api_key", "secret")
#: Columns still read from older files: ``account`` fills the field its venue uses (see venue_fields).
LEGACY_COLUMNS: tuple[str, ...] = ("account",)
ACCEPTED_COLUMNS: tuple[str, ...] = (*COLUMNS, *LEGACY_COLUMNS)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ACCOUNT_ID = re.compile(r"^[0-9]{1,20}$")
# A sub-account name: what the venues allow (letters, digits and a few marks), never a control character.
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
# Light on purpose: one address, no display name, no spaces or control characters; the mail server
# decides the rest.
_EMAIL_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})+$")
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_PRINTABLE_TOKEN = re.compile(r"^[\x21-\x7e]{1,512}$")
#: Longest cell kept; the longest credential (a Coinbase EC key in base64) is a few hundred.
MAX_CELL_CHARS = 1024
# A value shown in a message: one short token. Anything else is likely part of a damaged row (a stray
# quote makes one field swallow the lines after it, credentials included), so only its length is shown.
_SHOWABLE = re.compile(r"^[^\s,;\"'`]{1,40}$")


# A column name is shown only if it reads like one: a header that swallowed a data row (a lost line
# break) would otherwise print that row's API key and secret as "column names".
_COLUMN_NAME = re.compile(r"^[A-Za-z_ ]{1,32}$")


def _shown(value: str) -> str:
    return repr(value) if _SHOWABLE.match(value) else f"<{len(value)} characters>"


def _shown_column(name: str) -> str:
    return repr(name) if _COLUMN_NAME.match(name) else f"<a {len(name)}-character name>"


@dataclass(frozen=True, repr=False)
class InventoryRow:
    """One valid inventory row. ``priority``: larger goes first."""

    line: int
    key_id: str
    venue: str
    owner: str
    account_id: str  # the numeric user id (uid) of the account that holds the key
    account_name: str  # the sub-account's name
    api_key: str
    secret: str
    passphrase: str
    method: str
    priority: int
    email: str = ""  # the owner's address for notices; may be empty

    def __repr__(self) -> str:
        return f"InventoryRow(line={self.line}, key_id={self.key_id!r}, venue={self.venue!r})"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.api_key)

    @property
    def account(self) -> str:
        """The account as the venue knows it: the field its revoke call sends, else whichever is set."""
        return account_of(self.venue, self.method, self.account_id, self.account_name)


def _text(raw: dict[str, object], name: str) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise ValueError(f"column {name!r} must be text")
    return str(value).strip()


def parse_row(raw: dict[str, object], source: str, line: int) -> InventoryRow:
    """Validate one raw row (column name -> value). Messages never include a secret or an API key."""

    def fail(reason: str) -> InventoryRowError:
        return InventoryRowError(source, line, reason)

    unknown = sorted(set(raw) - set(ACCEPTED_COLUMNS) - {""})
    if unknown:
        raise fail(f"unknown column(s) {', '.join(map(_shown_column, unknown))}")
    try:
        values = {name: _text(raw, name) for name in ACCEPTED_COLUMNS}
    except ValueError as error:
        raise fail(str(error)) from None
    for name in REQUIRED:
        if not values[name]:
            raise fail(f"missing {name}")
    for name in ACCEPTED_COLUMNS:
        if _CONTROL.search(values[name]):
            # a line break or an escape sequence in an owner or account would reach terminals, reports
            # and packets; in a key it is a damaged cell
            raise fail(f"{name} holds a control character (a line break, tab or escape)")
    key_id = values["key_id"]
    if not _KEY_ID.match(key_id):
        raise fail("key_id must be 1-128 characters of letters, digits and _ . : @ -, starting with a letter or digit")
    venue = values["venue"].lower()
    venue_methods = methods_for(venue)
    if venue_methods is None:
        raise fail(f"key {key_id}: unknown or unsupported venue {_shown(values['venue'])}")
    for name in ("api_key", "secret", "passphrase"):
        if values[name] and not _PRINTABLE_TOKEN.match(values[name]):
            raise fail(f"key {key_id}: {name} must be printable ASCII without spaces")
    if venue_methods.needs_passphrase and not values["passphrase"]:
        raise fail(f"key {key_id}: venue {venue} needs a passphrase")
    method = values["method"].lower() or venue_methods.default
    if method not in venue_methods.methods:
        raise fail(
            f"key {key_id}: venue {venue} has no revoke method {_shown(method)}"
            f" (known: {', '.join(venue_methods.methods)})"
        )
    priority_text = values["priority"] or "0"
    try:
        priority = int(priority_text)
    except ValueError:
        raise fail(f"key {key_id}: priority must be an integer, got {_shown(priority_text)}") from None
    if not -1_000_000 <= priority <= 1_000_000:
        raise fail(f"key {key_id}: priority out of range")
    account_id, account_name = _account_fields(values, venue, method, key_id, fail)
    email = values["email"]
    if email and (len(email) > 254 or not _EMAIL.match(email)):
        raise fail(f"key {key_id}: email is not one plain address (name@example.com)")
    return InventoryRow(
        line=line,
        key_id=key_id,
        venue=venue,
        owner=values["owner"],
        account_id=account_id,
        account_name=account_name,
        api_key=values["api_key"],
        secret=values["secret"],
        passphrase=values["passphrase"],
        method=method,
        priority=priority,
        email=email,
    )


def _account_fields(
    values: dict[str, str], venue: str, method: str, key_id: str, fail: Callable[[str], InventoryRowError]
) -> tuple[str, str]:
    """``account_id`` and ``account_name``, the old ``account`` column filling the one its venue uses;
    refused when the field this venue and method send is empty or not of its form."""
    fields = {ACCOUNT_ID: values["account_id"], ACCOUNT_NAME: values["account_name"]}
    legacy = values["account"]
    if legacy:
        target = legacy_field(venue)
        if fields[target] and fields[target] != legacy:
            raise fail(f"key {key_id}: account and {target} disagree (give {target} only)")
        fields[target] = legacy
    if fields[ACCOUNT_ID] and not _ACCOUNT_ID.match(fields[ACCOUNT_ID]):
        raise fail(f"key {key_id}: account_id must be the account's numeric user id (1-20 digits)")
    if fields[ACCOUNT_NAME] and not _ACCOUNT_NAME.match(fields[ACCOUNT_NAME]):
        raise fail(
            f"key {key_id}: account_name must be 1-64 letters, digits and _ . @ + -, starting with a letter or digit"
        )
    needed = needed_field(venue, method)
    if needed and not fields[needed]:
        raise fail(
            f"key {key_id}: venue {venue} method {method} needs {needed} (sent as {venue_parameter(venue, method)})"
        )
    return fields[ACCOUNT_ID], fields[ACCOUNT_NAME]


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, object] | InventoryRowError]]:
    """Each data row of ``path`` by the line it starts on, as column -> value or as the row's error.

    Reads line by line: a damaged line or record is the error of its row only, and the rows after it
    are read. A file with no data row at all is an ``InputError``.
    """
    source = str(path)
    lines = text_lines(path, "inventory file")
    rows = (
        _json_rows(source, lines) if path.suffix.lower() in {".jsonl", ".ndjson", ".json"} else _csv_rows(source, lines)
    )
    data_rows = 0
    for number, raw in rows:
        data_rows += 1
        if not isinstance(raw, InventoryRowError):
            raw = _long_cell(source, number, raw) or raw
        yield number, raw
    if not data_rows:
        raise InputError(f"{source}: no data rows (an inventory holds at least one key)")


def _long_cell(source: str, line: int, raw: dict[str, object]) -> InventoryRowError | None:
    for name, value in raw.items():
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            return InventoryRowError(
                source, line, f"column {_shown_column(name)} longer than {MAX_CELL_CHARS} characters"
            )
    return None


def _json_rows(source: str, lines: Iterator[TextLine]) -> Iterator[tuple[int, dict[str, object] | InventoryRowError]]:
    for line in lines:
        number = line.number
        if line.error:
            yield number, InventoryRowError(source, number, line.error)
            continue
        if not line.text.strip():
            continue
        try:
            value = json.loads(line.text)
        except json.JSONDecodeError as error:
            yield number, InventoryRowError(source, number, f"not valid JSON ({error.msg})")
            continue
        except (ValueError, RecursionError):
            # json raises these, not JSONDecodeError, for a number too long or nesting too deep
            yield number, InventoryRowError(source, number, "not valid JSON (number too long or too deep)")
            continue
        if not isinstance(value, dict):
            yield number, InventoryRowError(source, number, "each line must be a JSON object")
            continue
        yield number, value


def _csv_rows(source: str, lines: Iterator[TextLine]) -> Iterator[tuple[int, dict[str, object] | InventoryRowError]]:
    records = csv_records(lines)
    header = next(records, None)
    if header is None:
        raise InputError(f"{source}: empty file (no header, no rows)")
    if header.error:
        raise InputError(f"{source}:{header.line}: header: {header.error}")
    names = header.fields
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise InputError(f"{source}:{header.line}: header lacks column(s) {', '.join(missing)}")
    for record in records:
        if record.error:
            yield record.line, InventoryRowError(source, record.line, record.error)
        elif len(record.fields) > len(names):
            yield record.line, InventoryRowError(source, record.line, "more fields than columns")
        else:
            yield record.line, dict(zip(names, record.fields, strict=False))


def read_inventory(path: Path) -> tuple[list[InventoryRow], list[InventoryRowError]]:
    """All valid rows of ``path`` and an error for each row that is not.

    Duplicates inside the file (a key_id or an API key seen on an earlier line) are errors of the
    later line; the first occurrence is kept.
    """
    rows: list[InventoryRow] = []
    errors: list[InventoryRowError] = []
    seen_ids: dict[str, int] = {}
    seen_keys: dict[tuple[str, str], int] = {}
    for number, raw in _raw_rows(path):
        if isinstance(raw, InventoryRowError):
            errors.append(raw)
            continue
        try:
            row = parse_row(raw, str(path), number)
        except InventoryRowError as error:
            errors.append(error)
            continue
        if row.key_id in seen_ids:
            errors.append(
                InventoryRowError(
                    str(path),
                    number,
                    f"duplicate key_id {row.key_id} (first on line {seen_ids[row.key_id]})",
                )
            )
            continue
        api_ref = (row.venue, row.fingerprint)
        if api_ref in seen_keys:
            errors.append(
                InventoryRowError(
                    str(path),
                    number,
                    f"key {row.key_id}: same API key ({row.fingerprint}) as line {seen_keys[api_ref]}",
                )
            )
            continue
        seen_ids[row.key_id] = number
        seen_keys[api_ref] = number
        rows.append(row)
    return rows, errors
