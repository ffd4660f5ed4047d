"""Reading inventory files: good rows come through, each bad row is named by file, line and reason,
and no message ever repeats a row's API key, secret or passphrase."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyrevoke.errors import InputError, InventoryRowError
from keyrevoke.inventory import InventoryRow, parse_row, read_inventory
from keyrevoke.venues import SUPPORTED_VENUES, VenueMethods

#: the columns of an inventory written before account_id and account_name: still read
COLUMNS = ("key_id", "venue", "owner", "account", "api_key", "secret", "passphrase", "method", "priority")
HEADER = ",".join(COLUMNS)
# Every made-up credential carries "zq" so that a leak is easy to spot, whichever row it came from.
GOOD_CSV_ROWS = [
    "k1,binance,alice,5001,APIKEY-zq-k1-0123456789,SECRET-zq-k1-abcdef,,,5",
    "k2,Bybit,bob,7,APIKEY-zq-k2-0123456789,SECRET-zq-k2-abcdef,PASS-zq-k2,sub,",
    " k3 , binance , carol , 5003 ,APIKEY-zq-k3-0123456789,SECRET-zq-k3-abcdef,,BROKER,-3",
]


def credentials(text: str) -> list[str]:
    """The credential strings of a file's text (every comma/quote-separated token holding 'zq')."""
    tokens = text.replace('"', ",").replace(":", ",").replace("\n", ",").split(",")
    return [token.strip() for token in tokens if "zq" in token]


def assert_no_credentials(messages: list[str], text: str) -> None:
    for secret in credentials(text):
        for message in messages:
            assert secret not in message, f"{secret!r} leaked in {message!r}"


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "keys.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def json_row(key_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key_id": key_id,
        "venue": "binance",
        "owner": "alice",
        "account_id": "5000",
        "api_key": f"APIKEY-zq-{key_id}-0123456789",
        "secret": f"SECRET-zq-{key_id}-abcdef",
    }
    row.update(values)
    return row


def write_jsonl(tmp_path: Path, *lines: object, name: str = "keys.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8"
    )
    return path


def by_id(rows: list[InventoryRow]) -> dict[str, InventoryRow]:
    return {r.key_id: r for r in rows}


# --- good files -------------------------------------------------------------------------------------


def test_a_good_csv_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, *GOOD_CSV_ROWS)

    rows, errors = read_inventory(path)

    assert errors == []
    assert [(r.key_id, r.line) for r in rows] == [("k1", 2), ("k2", 3), ("k3", 4)]
    k1, k2, k3 = rows
    assert (k1.venue, k1.owner, k1.account, k1.method, k1.priority, k1.passphrase) == (
        "binance",
        "alice",
        "5001",
        "broker",  # binance's default method
        5,
        "",
    )
    assert (k2.venue, k2.method, k2.passphrase, k2.priority) == ("bybit", "sub", "PASS-zq-k2", 0)
    assert (k3.key_id, k3.venue, k3.owner, k3.account, k3.method, k3.priority) == (
        "k3",
        "binance",
        "carol",
        "5003",
        "broker",
        -3,
    )
    assert k1.api_key == "APIKEY-zq-k1-0123456789"
    assert k1.secret == "SECRET-zq-k1-abcdef"
    assert k1.fingerprint.startswith("sha256:")
    assert_no_credentials([repr(r) for r in rows], path.read_text())


def test_a_csv_file_with_only_the_required_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "k1,bybit,alice,AK-zq-1,SK-zq-1", header="key_id,venue,owner,api_key,secret")

    rows, errors = read_inventory(path)

    assert errors == []
    assert [(r.key_id, r.method, r.priority, r.account) for r in rows] == [("k1", "self", 0, "")]


def test_a_csv_file_with_quoting_and_windows_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_bytes(
        b"key_id,venue,owner,account,api_key,secret\r\n"
        b'k1,binance,"Smith, Alice","desk\r\ntwo",AK-zq-1,SK-zq-1\r\n'
        b"k2,binance,bob,5000,AK-zq-2,SK-zq-2\r\n"
        b"k3,bitstamp,bob,,AK-zq-3,SK-zq-3\r\n"
    )

    rows, errors = read_inventory(path)

    assert [(r.key_id, r.owner, r.account) for r in rows] == [("k2", "bob", "5000")]
    assert [r.line for r in rows] == [4]
    assert [(e.line, e.reason) for e in errors] == [
        (2, "account holds a control character (a line break, tab or escape)"),
        (5, "key k3: unknown or unsupported venue 'bitstamp'"),
    ]


def test_a_csv_file_saved_by_a_spreadsheet(tmp_path: Path) -> None:
    """A byte-order mark and a trailing comma on every line, header included."""
    path = tmp_path / "export.csv"
    path.write_text(
        "\ufeffkey_id,venue,owner,api_key,secret,\nk1,bybit,alice,AK-zq-1,SK-zq-1,\nk2,bybit,bob,AK-zq-2,SK-zq-2,\n",
        encoding="utf-8",
    )

    rows, errors = read_inventory(path)

    assert errors == []
    assert [r.key_id for r in rows] == ["k1", "k2"]


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json", ".JSONL"])
def test_a_good_json_lines_file(tmp_path: Path, suffix: str) -> None:
    path = write_jsonl(
        tmp_path,
        json_row("k1", priority=7, account_id="5001"),
        "",
        "   ",
        json_row("k2", venue="BYBIT", passphrase="PASS-zq-k2", method="Self", priority="-2"),
        json_row("k3", passphrase=None, method=None, account=None),
        name=f"keys{suffix}",
    )

    rows, errors = read_inventory(path)

    assert errors == []
    assert [(r.key_id, r.line) for r in rows] == [("k1", 1), ("k2", 4), ("k3", 5)]
    k1, k2, k3 = rows
    assert (k1.priority, k1.account, k1.method) == (7, "5001", "broker")
    assert (k2.venue, k2.method, k2.priority, k2.passphrase) == ("bybit", "self", -2, "PASS-zq-k2")
    assert (k3.passphrase, k3.account, k3.method) == ("", "5000", "broker")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("keys.csv", "", "empty file (no header, no rows)"),
        ("keys.csv", "\n\n", "empty file (no header, no rows)"),
        ("keys.csv", HEADER + "\n", "no data rows (an inventory holds at least one key)"),
        ("keys.csv", HEADER + "\n\n  \n", "no data rows (an inventory holds at least one key)"),
        ("keys.jsonl", "", "no data rows (an inventory holds at least one key)"),
        ("keys.jsonl", "\n \n", "no data rows (an inventory holds at least one key)"),
    ],
)
def test_an_empty_file_or_one_without_data_rows_is_an_error(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content)

    with pytest.raises(InputError) as caught:
        read_inventory(path)
    assert str(caught.value) == f"{path}: {reason}"


def test_the_same_api_key_at_two_venues_is_two_keys(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "k1,binance,alice,5000,APIKEY-zq-shared-0001,SECRET-zq-1,,,",
        "k2,bybit,alice,,APIKEY-zq-shared-0001,SECRET-zq-2,PASS-zq-2,,",
    )

    rows, errors = read_inventory(path)

    assert errors == []
    assert [r.key_id for r in rows] == ["k1", "k2"]


# --- bad rows ---------------------------------------------------------------------------------------

#: the bad rows below start from this good row and change one thing
KX_ROW = {
    "key_id": "kx",
    "venue": "binance",
    "owner": "alice",
    "account": "5009",
    "api_key": "APIKEY-zq-x-0123456789",
    "secret": "SECRET-zq-x-abcdef",
    "passphrase": "",
    "method": "",
    "priority": "",
}


def kx(**changes: str) -> str:
    """The CSV line of ``KX_ROW`` with the named columns changed, written as they are (no quoting)."""
    return ",".join({**KX_ROW, **changes}[column] for column in COLUMNS)


BAD_CSV_ROWS = [
    pytest.param(kx(key_id=""), "missing key_id", id="no-key-id"),
    pytest.param(kx(venue=""), "missing venue", id="no-venue"),
    pytest.param(kx(owner="  "), "missing owner", id="no-owner"),
    pytest.param(kx(api_key=""), "missing api_key", id="no-api-key"),
    pytest.param(kx(secret=""), "missing secret", id="no-secret"),
    pytest.param("kx,binance,alice", "missing api_key", id="short-row"),
    pytest.param(kx(key_id="k x"), "key_id must be", id="bad-key-id"),
    pytest.param(kx(venue="bitstamp"), "unknown or unsupported venue", id="venue"),
    pytest.param(kx(method="self"), "no revoke method 'self'", id="method"),
    pytest.param(kx(priority="high"), "priority must be an integer", id="priority-text"),
    pytest.param(kx(priority="1.5"), "priority must be an integer", id="priority-float"),
    pytest.param(kx(priority="99999999"), "priority out of range", id="priority-range"),
    pytest.param(kx(secret="SECRET zq-x-abcdef"), "secret must be printable", id="secret-space"),
    pytest.param(kx(api_key="APIKEY-zq-x-012345678é"), "api_key must be printable", id="api-key-utf8"),
    pytest.param(kx(venue="bybit", passphrase="PASS zq-x"), "passphrase must be printable", id="passphrase-space"),
    # an unquoted comma inside the secret: one field more than there are columns
    pytest.param(kx(secret="SECRET-zq-x,abcdef"), "more fields than columns", id="extra-field"),
    pytest.param(
        "kx,binance,alice,,APIKEY-zq-x-0123456789,SECRET-zq-x-abcdef,PASS-zq-x,,,7,", "more fields", id="extra-fields"
    ),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_CSV_ROWS)
def test_a_bad_csv_row_is_named_and_the_good_rows_survive(tmp_path: Path, bad: str, reason: str) -> None:
    path = write_csv(tmp_path, GOOD_CSV_ROWS[0], bad, GOOD_CSV_ROWS[1])

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    [error] = errors
    assert isinstance(error, InventoryRowError)
    assert (error.source, error.line) == (str(path), 3)
    assert str(error) == f"{path}:3: {error.reason}"
    assert reason in error.reason
    assert_no_credentials([str(error), repr(error)], bad)


def test_a_venue_that_needs_a_passphrase_refuses_a_row_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SUPPORTED_VENUES, "okx", VenueMethods(("master",), needs_passphrase=True))
    path = write_csv(
        tmp_path,
        "k1,okx,alice,,APIKEY-zq-1-0123456789,SECRET-zq-1,PASS-zq-1,,",
        "k2,okx,alice,,APIKEY-zq-2-0123456789,SECRET-zq-2,,,",
    )

    rows, errors = read_inventory(path)

    assert [(r.key_id, r.method) for r in rows] == [("k1", "master")]
    assert [(e.line, e.reason) for e in errors] == [(3, "key k2: venue okx needs a passphrase")]


def test_duplicates_in_a_file_keep_the_first_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "k1,binance,alice,5000,APIKEY-zq-1-0123456789,SECRET-zq-1,,,",
        "k2,binance,alice,5000,APIKEY-zq-2-0123456789,SECRET-zq-2,,,",
        "k1,binance,mallory,5000,APIKEY-zq-9-0123456789,SECRET-zq-9,,,",
        "k3,binance,bob,5000,APIKEY-zq-2-0123456789,SECRET-zq-3,,,",
        "k4,binance,bob,5000,APIKEY-zq-4-0123456789,SECRET-zq-4,,,",
    )

    rows, errors = read_inventory(path)

    assert [(r.key_id, r.owner) for r in rows] == [("k1", "alice"), ("k2", "alice"), ("k4", "bob")]
    assert [(e.line, e.reason) for e in errors] == [
        (4, "duplicate key_id k1 (first on line 2)"),
        (5, f"key k3: same API key ({rows[1].fingerprint}) as line 3"),
    ]
    assert_no_credentials([str(e) for e in errors], path.read_text())


BAD_JSON_LINES = [
    pytest.param('{"key_id": "kx", "venue": "binance", "secret": "SECRET-zq-x-abc', "not valid JSON", id="cut"),
    pytest.param("key_id=kx secret=SECRET-zq-x-abc", "not valid JSON", id="not-json"),
    pytest.param('["kx", "binance", "alice", "APIKEY-zq-x-0123", "SECRET-zq-x-abc"]', "JSON object", id="array"),
    pytest.param('"SECRET-zq-x-abc"', "JSON object", id="string"),
    pytest.param("42", "JSON object", id="number"),
    pytest.param("null", "JSON object", id="null"),
    pytest.param(json.dumps(json_row("kx", secret=["SECRET-zq-x-abc"])), "'secret' must be text", id="secret-list"),
    pytest.param(json.dumps(json_row("kx", api_key={"v": "APIKEY-zq-x-1"})), "'api_key' must be text", id="key-dict"),
    pytest.param(json.dumps(json_row("kx", priority=1.5)), "'priority' must be text", id="priority-float"),
    pytest.param(json.dumps(json_row("kx", priority=True)), "priority must be an integer", id="priority-bool"),
    pytest.param(json.dumps(json_row("kx", venue=["binance"])), "'venue' must be text", id="venue-list"),
    pytest.param(json.dumps(json_row("kx", apikey="APIKEY-zq-x-2")), "unknown column(s) 'apikey'", id="unknown-column"),
    pytest.param(json.dumps(json_row("kx", owner=None)), "missing owner", id="owner-null"),
    pytest.param('{"key_id": "kx", "priority": ' + "9" * 5000 + "}", "not valid JSON", id="huge-number"),
    pytest.param("[" * 5_000 + "]" * 5_000, "not valid JSON", id="deep-nesting"),
    pytest.param("[" * 50_000 + "]" * 50_000, "line longer than 16384 bytes", id="over-long-line"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_JSON_LINES)
def test_a_bad_json_line_is_named_and_the_good_lines_survive(tmp_path: Path, bad: str, reason: str) -> None:
    path = write_jsonl(tmp_path, json_row("k1"), bad, json_row("k2"))

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    [error] = errors
    assert (error.source, error.line) == (str(path), 2)
    assert str(error).startswith(f"{path}:2: ")
    assert reason in error.reason
    assert_no_credentials([str(error)], bad)


def test_a_bad_row_gets_each_own_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, "nope", json_row("k1"), json_row("k1"), json_row("k2", venue="x"), "[]")

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1"]
    assert [e.line for e in errors] == [1, 3, 4, 5]


@pytest.mark.parametrize("column", [0, 3, 4, 7, 8], ids=["key_id", "account", "api_key", "method", "priority"])
def test_a_stray_quote_costs_its_own_row_only(tmp_path: Path, column: int) -> None:
    fields = GOOD_CSV_ROWS[0].split(",")
    fields[column] = '"' + fields[column]  # a plain CSV reader would run this cell on to the end of the file
    path = write_csv(tmp_path, ",".join(fields), *GOOD_CSV_ROWS[1:])

    rows, errors = read_inventory(path)

    assert [(r.key_id, r.line) for r in rows] == [("k2", 3), ("k3", 4)]
    assert [str(e) for e in errors] == [f'{path}:2: a stray quote (") opens a cell that does not close on its line']
    assert_no_credentials([str(errors[0])], path.read_text())


def test_a_quote_in_the_middle_of_a_cell_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, GOOD_CSV_ROWS[0], 'kx,binance,"alice"x,5009,AK-zq-x,SK-zq-x,,,', GOOD_CSV_ROWS[1])

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    assert [str(e) for e in errors] == [f'{path}:3: a stray quote (") inside a cell']


def test_two_stray_quotes_cost_their_two_rows_only(tmp_path: Path) -> None:
    first = GOOD_CSV_ROWS[0].replace(",5001,", ',"5001,')
    path = write_csv(tmp_path, first, GOOD_CSV_ROWS[1], 'kx,binance,"alice,5009,AK-zq-x,SK-zq-x,,,', GOOD_CSV_ROWS[2])

    rows, errors = read_inventory(path)

    assert [(r.key_id, r.line) for r in rows] == [("k2", 3), ("k3", 5)]
    assert [e.line for e in errors] == [2, 4]


@pytest.mark.parametrize(
    ("cell", "column"),
    [
        ('"Smith\nAlice"', "owner"),
        ('"Smith\r\nAlice"', "owner"),
        ('"Smith\x1b[2J\x1b[31mALL KEYS CONFIRMED"', "owner"),
        ('"bob\tsmith"', "owner"),
        ('"bo\u2028b"', "owner"),
    ],
    ids=["line-break", "crlf", "escape", "tab", "line-separator"],
)
def test_a_control_character_in_a_cell_rejects_its_row_and_keeps_the_next(
    tmp_path: Path, cell: str, column: str
) -> None:
    bad = f"kx,binance,{cell},5009,APIKEY-zq-x-0123456789,SECRET-zq-x-abcdef,,,"
    path = write_csv(tmp_path, GOOD_CSV_ROWS[0], bad, GOOD_CSV_ROWS[1], GOOD_CSV_ROWS[2])

    rows, errors = read_inventory(path)

    following = 4 + cell.count("\n")  # line numbers count the line break inside the cell
    assert [(r.key_id, r.line) for r in rows] == [("k1", 2), ("k2", following), ("k3", following + 1)]
    assert [str(e) for e in errors] == [f"{path}:3: {column} holds a control character (a line break, tab or escape)"]


def test_a_multiline_cell_in_a_key_column_is_named_at_its_first_line(tmp_path: Path) -> None:
    bad = 'kx,binance,alice,5009,"APIKEY-zq-x\n-0123456789",SECRET-zq-x-abcdef,,,'
    path = write_csv(tmp_path, bad, GOOD_CSV_ROWS[0], GOOD_CSV_ROWS[1])

    rows, errors = read_inventory(path)

    assert [(r.key_id, r.line) for r in rows] == [("k1", 4), ("k2", 5)]
    assert [str(e) for e in errors] == [f"{path}:2: api_key holds a control character (a line break, tab or escape)"]
    assert_no_credentials([str(errors[0])], path.read_text())


@pytest.mark.parametrize("name", ["keys.csv", "keys.jsonl"])
def test_a_cell_over_the_size_limit_rejects_its_row_only(tmp_path: Path, name: str) -> None:
    long_owner = "o" * 2000
    if name.endswith("csv"):
        path = write_csv(
            tmp_path,
            GOOD_CSV_ROWS[0],
            f"kx,binance,{long_owner},5009,APIKEY-zq-x-0123456789,SECRET-zq-x,,,",
            GOOD_CSV_ROWS[1],
            name=name,
        )
    else:
        path = write_jsonl(tmp_path, json_row("k1"), json_row("kx", owner=long_owner), json_row("k2"), name=name)

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    assert [str(e) for e in errors] == [
        f"{path}:{3 if name.endswith('csv') else 2}: column 'owner' longer than 1024 characters"
    ]


@pytest.mark.parametrize("name", ["keys.csv", "keys.jsonl"])
def test_an_over_long_row_rejects_that_row_only(tmp_path: Path, name: str) -> None:
    huge = "x" * 200_000  # over the line limit (and over the csv module's own field limit)
    if name.endswith("csv"):
        path = write_csv(tmp_path, GOOD_CSV_ROWS[0], f"kx,binance,alice,5009,{huge},SECRET-zq-1,,,", GOOD_CSV_ROWS[1])
    else:
        path = write_jsonl(tmp_path, json_row("k1"), json_row("kx", api_key=huge), json_row("k2"), name=name)

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    assert [str(e) for e in errors] == [f"{path}:{3 if name.endswith('csv') else 2}: line longer than 16384 bytes"]


# --- bad files --------------------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"

    with pytest.raises(InputError, match="no such inventory file") as caught:
        read_inventory(path)
    assert str(path) in str(caught.value)


def test_a_folder_is_not_an_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_inventory(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a folder, not a file"


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("key_id,venue,owner,api_key", "secret"),
        ("key_id,venue,owner,apikey,secret", "api_key"),
        ("id,venue,owner,account", "key_id, api_key, secret"),
    ],
)
def test_a_header_without_a_required_column_is_named(tmp_path: Path, header: str, missing: str) -> None:
    path = write_csv(tmp_path, "k1,binance,alice,APIKEY-zq-1-0123,SECRET-zq-1", header=header)

    with pytest.raises(InputError) as caught:
        read_inventory(path)
    assert str(caught.value) == f"{path}:1: header lacks column(s) {missing}"


def test_a_file_without_a_header_is_refused_without_repeating_its_first_row(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("k1,binance,alice,5000,APIKEY-zq-1-0123,SECRET-zq-1,PASS-zq-1,,\n")

    with pytest.raises(InputError, match="header lacks") as caught:
        read_inventory(path)
    assert_no_credentials([str(caught.value)], path.read_text())


def test_a_stray_quote_in_the_header_does_not_swallow_the_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path, *GOOD_CSV_ROWS, header=HEADER.replace("owner", '"owner'))

    with pytest.raises(InputError) as caught:
        read_inventory(path)
    assert str(caught.value) == f'{path}:1: header: a stray quote (") opens a cell that does not close on its line'


def test_an_unknown_header_column_is_named_on_each_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "k1,binance,alice,AK-zq-1,SK-zq-1,x", header="key_id,venue,owner,api_key,secret,notes")

    rows, errors = read_inventory(path)

    assert rows == []
    assert [(e.line, e.reason) for e in errors] == [(2, "unknown column(s) 'notes'")]


@pytest.mark.parametrize("name", ["keys.csv", "keys.jsonl"])
def test_a_line_that_is_not_utf8_rejects_its_row_and_the_rest_are_read(tmp_path: Path, name: str) -> None:
    if name.endswith("jsonl"):
        lines = [
            json.dumps(json_row("k1")).encode(),
            json.dumps(json_row("kx", secret="SECRET-zq-latin-1-\xe9"), ensure_ascii=False).encode("latin-1"),
            json.dumps(json_row("k2")).encode(),
        ]
        bad_line = 2
    else:
        lines = [
            HEADER.encode(),
            GOOD_CSV_ROWS[0].encode(),
            "kx,binance,alice,5009,APIKEY-zq-x-0123,SECRET-zq-latin-1-\xe9,,,".encode("latin-1"),
            GOOD_CSV_ROWS[1].encode(),
        ]
        bad_line = 3
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    column = lines[bad_line - 1].index(b"\xe9") + 1
    assert [str(e) for e in errors] == [f"{path}:{bad_line}: not UTF-8 text (byte 0xE9 at column {column})"]
    assert "SECRET-zq" not in str(errors[0])


def test_a_binary_file_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    with pytest.raises(InputError) as caught:
        read_inventory(path)
    assert str(caught.value) == f"{path}:1: header: not UTF-8 text (byte 0x89 at column 1)"


def test_a_lone_carriage_return_ends_a_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_bytes(("\r".join([HEADER, GOOD_CSV_ROWS[0], GOOD_CSV_ROWS[1]]) + "\r").encode())

    rows, errors = read_inventory(path)

    assert errors == []
    assert [(r.key_id, r.line) for r in rows] == [("k1", 2), ("k2", 3)]


# --- parse_row on its own ---------------------------------------------------------------------------


def test_parse_row_validates_one_row() -> None:
    row = parse_row(json_row("k1", venue=" Binance ", priority=3), "api", 12)

    assert (row.key_id, row.venue, row.priority, row.line) == ("k1", "binance", 3, 12)
    assert "SECRET" not in repr(row)
    with pytest.raises(InventoryRowError) as caught:
        parse_row(json_row("k1", venue="nowhere"), "api", 12)
    assert (caught.value.source, caught.value.line) == ("api", 12)


# --- properties -------------------------------------------------------------------------------------

# Credentials always contain "~"; nothing else a row holds ever does, so a "~"-string in a message can
# only have come from a credential.
plain_text = st.text(st.characters(codec="utf-8", exclude_characters="~"), max_size=20)
credential = st.builds(
    lambda body: f"~{body}~",
    st.one_of(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7D), max_size=20),  # printable: passes
        st.text(st.characters(codec="utf-8"), max_size=20),  # anything: mostly refused
    ),
)
SECRET_COLUMNS = ("api_key", "secret", "passphrase")


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` about seven times in eight, so that most rows get past the first checks to the later ones.

    (``one_of`` would not do: Hypothesis favours its last branch, and an integer range's ends.)
    """
    return st.integers(0, 15).flatmap(lambda n: other if n in (5, 10) else usual)


known_values = {
    "key_id": mostly(st.sampled_from(["k1", "k2", "key.3@x"]), st.one_of(st.sampled_from(["k 3", "-k"]), plain_text)),
    "venue": mostly(st.sampled_from(["binance", "bybit", " BYBIT "]), st.one_of(st.just("bitstamp"), plain_text)),
    "owner": mostly(st.sampled_from(["alice", "bob"]), plain_text),
    "method": mostly(st.sampled_from(["broker", "self", "sub", ""]), plain_text),
    "priority": mostly(
        st.sampled_from(["0", "5", "-1", ""]), st.one_of(st.sampled_from(["1e3", "9" * 30]), plain_text)
    ),
}


def column_value(name: str) -> st.SearchStrategy[str]:
    if name in SECRET_COLUMNS:
        return mostly(credential, st.just(""))
    return known_values.get(name, plain_text)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), plain_text)


def json_value(name: str) -> st.SearchStrategy[Any]:
    """Mostly text, as it should be; sometimes any other JSON value."""
    if name in SECRET_COLUMNS:
        odd: st.SearchStrategy[Any] = st.one_of(
            st.lists(credential, max_size=2), st.dictionaries(plain_text, credential)
        )
    else:
        odd = st.one_of(json_scalars, st.lists(json_scalars, max_size=3))
    return mostly(column_value(name), odd)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A CSV file (as text) with arbitrary columns and rows, and every credential in it."""
    header = [name for name in ("key_id", "venue", "owner", "api_key", "secret") if draw(st.integers(0, 19))]
    header += draw(st.lists(mostly(st.sampled_from(COLUMNS), plain_text.filter(lambda s: s.strip() == s)), max_size=5))
    header = draw(st.permutations(list(dict.fromkeys(header))))  # a repeated column name would mix up the values
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        values = [draw(column_value(name)) for name in header]
        cut = draw(st.integers(0, len(values)))
        extra = draw(st.lists(plain_text, max_size=2))
        rows.append(values[: cut or len(values)] + extra)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    secrets = [v for row in rows for v in row if "~" in v]
    return buffer.getvalue(), secrets


@st.composite
def json_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A row as a JSON object: known and unknown columns, values of any JSON type; credentials only where
    credentials belong."""
    names = [name for name in ("key_id", "venue", "owner", "api_key", "secret") if draw(st.integers(0, 19))]
    names += draw(st.lists(mostly(st.sampled_from(COLUMNS), plain_text), max_size=4))
    return {name: draw(json_value(name)) for name in dict.fromkeys(names)}


@st.composite
def json_files(draw: st.DrawFn) -> tuple[str, list[str]]:
    lines, secrets = [], []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["object", "object", "object", "value", "text"]))
        if kind == "text":
            lines.append(draw(plain_text).replace("\n", " "))
            continue
        if kind == "value":
            lines.append(json.dumps(draw(st.one_of(json_scalars, st.lists(plain_text)))))
            continue
        row = draw(json_objects())
        secrets.extend(_credentials_in(row))
        lines.append(json.dumps(row))
    return "\n".join(lines), secrets


def _credentials_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if "~" in value else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _credentials_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _credentials_in(v)]
    return []


def read_safely(path: Path) -> list[str]:
    """The messages ``read_inventory`` gives for ``path``; any other exception fails the test."""
    try:
        rows, errors = read_inventory(path)
    except InputError as error:
        return [str(error)]
    for row in rows:
        assert isinstance(row, InventoryRow)
    assert all(isinstance(e, InventoryRowError) and e.source == str(path) for e in errors)
    lines = [r.line for r in rows] + [e.line for e in errors]
    assert len(lines) == len(set(lines))  # one verdict per row
    return [str(e) for e in errors] + [repr(r) for r in rows]


PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(case=csv_files())
def test_property_csv_rows_never_crash_and_never_leak(tmp_path: Path, case: tuple[str, list[str]]) -> None:
    text, secrets = case
    path = tmp_path / "fuzz.csv"
    path.write_text(text, encoding="utf-8", newline="")

    messages = read_safely(path)

    for secret in secrets:
        for message in messages:
            assert secret not in message


@PROPERTY
@given(case=json_files())
def test_property_json_lines_never_crash_and_never_leak(tmp_path: Path, case: tuple[str, list[str]]) -> None:
    text, secrets = case
    path = tmp_path / "fuzz.jsonl"
    path.write_text(text, encoding="utf-8")

    messages = read_safely(path)

    for secret in secrets:
        for message in messages:
            assert secret not in message


@PROPERTY
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".jsonl", ".txt"]))
def test_property_arbitrary_bytes_give_only_input_errors(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)

    read_safely(path)


@PROPERTY
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=3), st.integers(0, 3)), min_size=1, max_size=4),
    suffix=st.sampled_from([".csv", ".jsonl"]),
)
def test_property_a_damaged_good_file_gives_only_input_errors(
    tmp_path: Path, edits: list[tuple[int, bytes, int]], suffix: str
) -> None:
    good = (
        "\n".join([HEADER, *GOOD_CSV_ROWS])
        if suffix == ".csv"
        else "\n".join(json.dumps(json_row(f"k{n}", priority=n)) for n in range(3))
    )
    data = good.encode()
    for at, insert, delete in edits:
        at %= len(data) + 1
        data = data[:at] + insert + data[at + delete :]
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(data)

    read_safely(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=json_objects())
def test_property_parse_row_raises_only_row_errors_without_credentials(raw: dict[str, object]) -> None:
    outcome: InventoryRow | InventoryRowError
    try:
        outcome = parse_row(raw, "fuzz", 1)
    except InventoryRowError as error:
        outcome = error
    if isinstance(outcome, InventoryRow):
        assert "~" not in repr(outcome)
        return
    assert (outcome.source, outcome.line) == ("fuzz", 1)
    for secret in _credentials_in(raw):
        assert secret not in str(outcome)


# --- the account split: account_id and account_name -------------------------------------------------

SPLIT_HEADER = "key_id,venue,owner,account_id,account_name,email,api_key,secret,passphrase,method,priority"


def test_each_venue_takes_the_account_field_its_revoke_call_sends(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "b1,binance,alice,5001,,alice@example.com,APIKEY-zq-b1-0123456789,SECRET-zq-b1,,,",
        "o1,okx,alice,,desk-one,,APIKEY-zq-o1-0123456789,SECRET-zq-o1,PASS-zq-o1,,",
        "g1,gate,bob,6001,bob-gate,,APIKEY-zq-g1-0123456789,SECRET-zq-g1,,,",
        "y1,bybit,bob,,,,APIKEY-zq-y1-0123456789,SECRET-zq-y1,,self,",
        header=SPLIT_HEADER,
    )

    rows, errors = read_inventory(path)

    assert errors == []
    got = {r.key_id: (r.account_id, r.account_name, r.account, r.email) for r in rows}
    assert got == {
        "b1": ("5001", "", "5001", "alice@example.com"),
        "o1": ("", "desk-one", "desk-one", ""),
        "g1": ("6001", "bob-gate", "6001", ""),
        "y1": ("", "", "", ""),  # a key that deletes itself names no account
    }


def test_the_old_account_column_fills_the_field_its_venue_uses(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "b1,binance,alice,5001,APIKEY-zq-b1-0123456789,SECRET-zq-b1,,,",
        "y1,bybit,alice,7001,APIKEY-zq-y1-0123456789,SECRET-zq-y1,,sub,",
        "g1,gate,alice,6001,APIKEY-zq-g1-0123456789,SECRET-zq-g1,,,",
        "o1,okx,alice,desk-one,APIKEY-zq-o1-0123456789,SECRET-zq-o1,PASS-zq-o1,,",
        "c1,kucoin,alice,desk-two,APIKEY-zq-c1-0123456789,SECRET-zq-c1,PASS-zq-c1,,",
        "m1,mexc,alice,desk-three,APIKEY-zq-m1-0123456789,SECRET-zq-m1,,,",
    )

    rows, errors = read_inventory(path)

    assert errors == []
    assert {r.key_id: (r.account_id, r.account_name) for r in rows} == {
        "b1": ("5001", ""),
        "y1": ("7001", ""),
        "g1": ("6001", ""),
        "o1": ("", "desk-one"),
        "c1": ("", "desk-two"),
        "m1": ("", "desk-three"),
    }


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(
            "x1,binance,alice,,desk,,APIKEY-zq-x1-0123456789,SECRET-zq-x1,,,",
            "key x1: venue binance method broker needs account_id (sent as subAccountId)",
            id="binance-no-id",
        ),
        pytest.param(
            "x1,gate,alice,,desk,,APIKEY-zq-x1-0123456789,SECRET-zq-x1,,,",
            "key x1: venue gate method sub needs account_id (sent as user_id)",
            id="gate-no-id",
        ),
        pytest.param(
            "x1,okx,alice,123,,,APIKEY-zq-x1-0123456789,SECRET-zq-x1,PASS-zq-x1,,",
            "key x1: venue okx method sub needs account_name (sent as subAcct)",
            id="okx-id-only",
        ),
        pytest.param(
            "x1,kucoin,alice,123,,,APIKEY-zq-x1-0123456789,SECRET-zq-x1,PASS-zq-x1,,",
            "key x1: venue kucoin method sub needs account_name (sent as subName)",
            id="kucoin-id-only",
        ),
        pytest.param(
            "x1,mexc,alice,123,,,APIKEY-zq-x1-0123456789,SECRET-zq-x1,,,",
            "key x1: venue mexc method sub needs account_name (sent as subAccount)",
            id="mexc-id-only",
        ),
        pytest.param(
            "x1,gate,alice,bob-gate,,,APIKEY-zq-x1-0123456789,SECRET-zq-x1,,,",
            "key x1: account_id must be the account's numeric user id (1-20 digits)",
            id="gate-name-as-id",
        ),
        pytest.param(
            "x1,okx,alice,,=HYPERLINK(1),,APIKEY-zq-x1-0123456789,SECRET-zq-x1,PASS-zq-x1,,",
            "key x1: account_name must be 1-64 letters, digits and _ . @ + -, starting with a letter or digit",
            id="formula-name",
        ),
        pytest.param(
            "x1,binance,alice,5001,,alice at example,APIKEY-zq-x1-0123456789,SECRET-zq-x1,,,",
            "key x1: email is not one plain address (name@example.com)",
            id="email",
        ),
        pytest.param(
            "x1,binance,alice,5001,,alice@example.com;bob@example.com,APIKEY-zq-x1-0123456789,SECRET-zq-x1,,,",
            "key x1: email is not one plain address (name@example.com)",
            id="two-emails",
        ),
    ],
)
def test_a_row_without_the_account_field_its_venue_needs_is_named(tmp_path: Path, bad: str, reason: str) -> None:
    good = "k1,binance,alice,5001,,,APIKEY-zq-k1-0123456789,SECRET-zq-k1,,,"
    after = "k2,okx,bob,,desk-two,,APIKEY-zq-k2-0123456789,SECRET-zq-k2,PASS-zq-k2,,"
    path = write_csv(tmp_path, good, bad, after, header=SPLIT_HEADER)

    rows, errors = read_inventory(path)

    assert [r.key_id for r in rows] == ["k1", "k2"]
    assert [str(e) for e in errors] == [f"{path}:3: {reason}"]


def test_account_and_account_id_that_disagree_are_refused(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "k1,binance,alice,5001,5002,APIKEY-zq-k1-0123456789,SECRET-zq-k1",
        header="key_id,venue,owner,account,account_id,api_key,secret",
    )

    rows, errors = read_inventory(path)

    assert rows == []
    assert [e.reason for e in errors] == ["key k1: account and account_id disagree (give account_id only)"]


OLD_INVENTORY = (
    "key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n"
    "b1,binance,alice,5001,APIKEY-zq-b1-0123456789,SECRET-zq-b1,,,\n"
    "y1,bybit,alice,7001,APIKEY-zq-y1-0123456789,SECRET-zq-y1,,sub,\n"
    "g1,gate,bob,6001,APIKEY-zq-g1-0123456789,SECRET-zq-g1,,,\n"
    "o1,okx,bob,desk-one,APIKEY-zq-o1-0123456789,SECRET-zq-o1,PASS-zq-o1,,\n"
    "c1,kucoin,carol,desk-two,APIKEY-zq-c1-0123456789,SECRET-zq-c1,PASS-zq-c1,,\n"
    "m1,mexc,carol,desk-three,APIKEY-zq-m1-0123456789,SECRET-zq-m1,,,\n"
    "r1,kraken,carol,AA11,APIKEY-zq-r1-0123456789,SECRET-zq-r1,,,\n"
)


def _make_old_ledger(url: str, inventory: Path) -> None:
    """A ledger as keyrevoke wrote it before the split: ``keys`` without account_id, account_name, email."""
    from keyrevoke.crypto import KeyEncryptionKey, SecretBox
    from keyrevoke.ledger import open_ledger

    ledger = open_ledger(url, SecretBox(KeyEncryptionKey(bytes(range(32)))))
    try:
        rows, errors = read_inventory(inventory)
        assert errors == []
        assert ledger.import_rows(rows, str(inventory)).added == 7
        with ledger.db.transaction() as tx:
            for column in ("account_id", "account_name", "email"):
                tx.execute(f"ALTER TABLE keys DROP COLUMN {column}")
        assert {"account_id", "account_name"}.isdisjoint(_key_columns(ledger))
    finally:
        ledger.close()


def _key_columns(ledger: Any) -> set[str]:
    if ledger.db.kind == "sqlite":
        return {row[1] for row in ledger.db.query("PRAGMA table_info(keys)")}
    return {
        row[0]
        for row in ledger.db.query(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'keys'"
        )
    }


def test_an_old_ledger_is_migrated_and_its_accounts_fill_the_field_each_venue_uses(
    tmp_path: Path, ledger_url: str
) -> None:
    from keyrevoke.crypto import KeyEncryptionKey, SecretBox
    from keyrevoke.ledger import open_ledger

    inventory = tmp_path / "old.csv"
    inventory.write_text(OLD_INVENTORY, encoding="utf-8")
    _make_old_ledger(ledger_url, inventory)

    ledger = open_ledger(ledger_url, SecretBox(KeyEncryptionKey(bytes(range(32)))))
    try:
        assert {"account_id", "account_name", "email"} <= _key_columns(ledger)
        listed = {k["key_id"]: (k["account_id"], k["account_name"], k["email"]) for k in ledger.list_keys()}
        assert listed == {
            "b1": ("5001", "", ""),
            "y1": ("7001", "", ""),
            "g1": ("6001", "", ""),
            "o1": ("", "desk-one", ""),
            "c1": ("", "desk-two", ""),
            "m1": ("", "desk-three", ""),
            "r1": ("", "AA11", ""),
        }
        # the old file imported again is the same keys: nothing added, nothing refused
        rows, _ = read_inventory(inventory)
        again = ledger.import_rows(rows, str(inventory))
        assert (again.added, again.unchanged, again.errors) == (0, 7, [])
        # the batch activities read the field each venue sends
        ledger.create_incident("inc-old", [], [], "tester")
        ledger.plan_incident("inc-old")
        loaded = {k.key_id: (k.account_id, k.account_name) for k in ledger.load_keys("inc-old", ["b1", "o1"])}
        assert loaded == {"b1": ("5001", ""), "o1": ("", "desk-one")}
    finally:
        ledger.close()
    # opening it once more changes nothing
    reopened = open_ledger(ledger_url, SecretBox(KeyEncryptionKey(bytes(range(32)))))
    try:
        assert {k["key_id"]: k["account_id"] for k in reopened.list_keys()}["g1"] == "6001"
    finally:
        reopened.close()


# --- every input file the CLI reads: one line naming the file (and the line), exit 2 --------------


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *argv: str) -> tuple[int, list[str], str]:
    from commander.main import run

    for name in [n for n in __import__("os").environ if n.startswith("KEYREVOKE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(tmp_path / "state"))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = run(list(argv))
    return code, err.getvalue().splitlines(), out.getvalue()


def test_cli_import_keeps_the_good_rows_around_bad_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.csv"
    path.write_bytes(
        (HEADER + "\n" + GOOD_CSV_ROWS[0] + "\n").encode()
        + b"kx,binance,al\xe9ce,5009,APIKEY-zq-x-0123456789,SECRET-zq-x,,,\n"
        + b'ky,binance,"alice,5009,APIKEY-zq-y-0123456789,SECRET-zq-y,,,\n'
        + (GOOD_CSV_ROWS[1] + "\n" + GOOD_CSV_ROWS[2] + "\n").encode()
    )

    code, errors, out = _cli(monkeypatch, tmp_path, "inventory", "import", str(path))

    assert errors == [
        f"error: {path}:3: not UTF-8 text (byte 0xE9 at column 14)",
        f'error: {path}:4: a stray quote (") opens a cell that does not close on its line',
    ]
    assert out.strip() == "3 added, 0 unchanged, 2 rejected"
    assert code != 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (no header, no rows)"),
        ((HEADER + "\n").encode(), "no data rows (an inventory holds at least one key)"),
    ],
    ids=["empty", "header-only"],
)
def test_cli_import_of_a_file_without_rows_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, reason: str
) -> None:
    path = tmp_path / "keys.csv"
    path.write_bytes(content)

    code, errors, out = _cli(monkeypatch, tmp_path, "inventory", "import", str(path))

    assert (code, errors, out) == (2, [f"keyrevoke: error: {path}: {reason}"], "")


BAD_LIST_FILES = [
    pytest.param(None, "no such {what}", id="missing"),
    pytest.param(b"alice\n\x89PNG\x00\x00\n", "2: binary data, not text (a NUL byte at column 5)", id="binary"),
    pytest.param(b"alice\nbob\nj\xf6rg\n", "3: not UTF-8 text (byte 0xF6 at column 2)", id="latin-1"),
    pytest.param(
        b"alice\nbob smith\n", "2: one entry per line, one token of at most 256 printable characters", id="two"
    ),
    pytest.param(b"# nobody\n\n", "lists nothing (one entry per line)", id="nothing"),
]


@pytest.mark.parametrize(("content", "reason"), BAD_LIST_FILES)
def test_cli_a_bad_owners_file_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "owners.txt"
    if content is not None:
        path.write_bytes(content)

    code, errors, _ = _cli(monkeypatch, tmp_path, "incident", "start", "--owners", str(path))

    where = f"{path}:" if reason[0].isdigit() else f"{path}: "
    assert (code, errors) == (2, [f"keyrevoke: error: {where}{reason.format(what='owners file')}"])


@pytest.mark.parametrize(("content", "reason"), BAD_LIST_FILES)
def test_cli_a_bad_key_list_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "keys.txt"
    if content is not None:
        path.write_bytes(content)

    code, errors, _ = _cli(
        monkeypatch, tmp_path, "incident", "confirm", "inc-1", "--venue", "kraken", "--keys", str(path)
    )

    where = f"{path}:" if reason[0].isdigit() else f"{path}: "
    assert (code, errors) == (2, [f"keyrevoke: error: {where}{reason.format(what='key list')}"])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"binance": {"api_key": "k\xe9y"}}', "1: not UTF-8 text (byte 0xE9 at column 27)"),
        (b'{"binance":\n  {"api_key": }\n}', "2: not valid JSON (Expecting value)"),
        (b"[" * 5000 + b"]" * 5000, " not valid JSON (a number too long or nesting too deep)"),
    ],
    ids=["latin-1", "broken", "deep"],
)
def test_cli_a_bad_master_credentials_file_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, reason: str
) -> None:
    inventory = write_csv(tmp_path, *GOOD_CSV_ROWS)
    masters = tmp_path / "masters.json"
    masters.write_bytes(content)

    code, errors, _ = _cli(monkeypatch, tmp_path, "sim", "--inventory", str(inventory), "--masters", str(masters))

    assert (code, errors) == (2, [f"keyrevoke: error: {masters}:{reason}"])


def test_cli_a_latin_1_scenario_file_is_named_with_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = write_csv(tmp_path, *GOOD_CSV_ROWS)
    scenario = tmp_path / "scenario.json"
    scenario.write_bytes(b'{"seed": 1,\n "venues": {"binance": {"note": "caf\xe9"}}}\n')

    code, errors, _ = _cli(monkeypatch, tmp_path, "sim", "--inventory", str(inventory), "--scenario", str(scenario))

    assert (code, errors) == (2, [f"keyrevoke: error: {scenario}:2: not UTF-8 text (byte 0xE9 at column 37)"])


# --- the simulator knows each sub-account by id and by name, and checks the one each venue takes ----

#: per venue: the master's delete call (ccxt's implicit method), its parameters given the account
#: value, and which field the venue takes there
SIM_DELETES: dict[str, tuple[str, Any, str]] = {
    "binance": (
        "sapiDeleteBrokerSubAccountApi",
        lambda key, account: {"subAccountId": account, "subAccountApiKey": key.api_key},
        "account_id",
    ),
    "gate": (
        "privateSubAccountsDeleteSubAccountsUserIdKeysKey",
        lambda key, account: {"user_id": account, "key": key.api_key},
        "account_id",
    ),
    "okx": (
        "privatePostUsersSubaccountDeleteApikey",
        lambda key, account: {"subAcct": account, "apiKey": key.api_key},
        "account_name",
    ),
    "kucoin": (
        "privateDeleteSubApiKey",
        lambda key, account: {"subName": account, "apiKey": key.api_key, "passphrase": key.passphrase},
        "account_name",
    ),
    "mexc": (
        "spotPrivateDeleteSubAccountApiKey",
        lambda key, account: {"subAccount": account, "apiKey": key.api_key},
        "account_name",
    ),
}


@pytest.mark.parametrize("venue", sorted(SIM_DELETES))
async def test_the_simulator_refuses_the_other_account_field_as_the_venue_does(venue: str) -> None:
    """A sub-account's name where the venue takes its numeric id (or the id where it takes the name)
    deletes nothing; the right field deletes the key."""
    import ccxt

    from activities.venues.base import Credentials
    from tests.venue_stage import exchanges_for
    from venuesim import SimKey, SimMaster, VenueSimulator

    passphrase = "Pass7word" if venue in {"okx", "kucoin"} else ""
    key = SimKey(
        f"{venue}-1",
        venue,
        f"{venue}ApiKey1x",
        f"{venue}Secret1x",
        passphrase=passphrase,
        account_id="90017",
        account_name="desk90017",
    )
    master = SimMaster(venue, f"{venue}MasterKey", f"{venue}MasterSecret", passphrase=passphrase and "MasterPass9")
    method, params, field = SIM_DELETES[venue]
    wrong = key.account_name if field == "account_id" else key.account_id
    right = getattr(key, field)
    sim = VenueSimulator([key], [master])
    async with exchanges_for(sim) as exchanges:
        exchange = exchanges.master(venue, Credentials(master.api_key, master.secret, master.passphrase))
        with pytest.raises(ccxt.BaseError):  # the venue's own error (at OKX: "APIKey does not exist")
            await getattr(exchange, method)(params(key, wrong))
        assert sim.is_live(venue, key.api_key), f"{venue} deleted a key named by its {field}'s counterpart"
        await getattr(exchange, method)(params(key, right))
        assert not sim.is_live(venue, key.api_key)


def test_sample_inventory_rows_carry_both_account_fields_and_the_simulator_knows_both(tmp_path: Path) -> None:
    from commander.sample import API_VENUES, write_sample
    from commander.simulate import sim_key

    inventory, _ = write_sample(tmp_path, 24)

    rows, errors = read_inventory(inventory)

    assert errors == []
    assert {r.venue for r in rows} == set(API_VENUES)
    for row in rows:
        assert row.account_id.isdigit(), row
        assert row.account_name, row
        simulated = sim_key(row)
        assert (simulated.account_id, simulated.account_name) == (row.account_id, row.account_name)


def test_owner_emails_come_from_the_inventory_and_stay_out_of_the_report_rows(tmp_path: Path, ledger_url: str) -> None:
    from dataclasses import fields

    from keyrevoke.crypto import KeyEncryptionKey, SecretBox
    from keyrevoke.ledger import KeyStatus, open_ledger

    path = write_csv(
        tmp_path,
        "k1,binance,alice,5001,,alice@example.com,APIKEY-zq-k1-0123456789,SECRET-zq-k1,,,",
        "k2,okx,alice,,desk-one,,APIKEY-zq-k2-0123456789,SECRET-zq-k2,PASS-zq-k2,,",
        "k3,gate,bob,6001,,,APIKEY-zq-k3-0123456789,SECRET-zq-k3,,,",
        header=SPLIT_HEADER,
    )
    rows, errors = read_inventory(path)
    assert errors == []
    ledger = open_ledger(ledger_url, SecretBox(KeyEncryptionKey(bytes(range(32)))))
    try:
        assert ledger.import_rows(rows, str(path)).added == 3
        ledger.create_incident("inc-mail", [], [], "tester")
        ledger.plan_incident("inc-mail")

        assert ledger.owner_emails("inc-mail") == {"alice": "alice@example.com"}
        statuses = {s.key_id: s for s in ledger.key_statuses("inc-mail")}
        assert {k: (s.account_id, s.account_name, s.account) for k, s in statuses.items()} == {
            "k1": ("5001", "", "5001"),
            "k2": ("", "desk-one", "desk-one"),
            "k3": ("6001", "", "6001"),
        }
        assert "email" not in {f.name for f in fields(KeyStatus)}
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"events": [5]}', "{path}: the event chain breaks at event 1: is a JSON int, not an event object"),
        (
            b'{"events": [], "chain": [1]}',
            "{path}: the event chain breaks at event 1: the report's chain summary is not an object",
        ),
        (
            b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "{path}: not valid JSON (a number too long or nesting too deep)",
        ),
        (b'{"events": [],\n "note": "caf\xe9"}', "{path}:2: not UTF-8 text (byte 0xE9 at column 14)"),
    ],
    ids=["event-number", "chain-list", "deep", "latin-1"],
)
def test_cli_verify_report_on_a_damaged_file_answers_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, reason: str
) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(content)

    code, errors, out = _cli(monkeypatch, tmp_path, "incident", "verify-report", str(path))

    lines = [line for line in [*errors, *out.splitlines()] if line]
    assert code != 0
    assert len(lines) == 1, lines
    assert reason.format(path=path) in lines[0]
