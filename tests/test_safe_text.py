"""Untrusted text is shown, never obeyed: spreadsheets get no formulas, terminals no escape sequences."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from commander.main import run
from keyrevoke.inventory import parse_row
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.safe_text import csv_cell, csv_row, terminal_text
from keyrevoke.settings import Settings

FAKE_STATUS = "\x1b[2J\x1b[H\x1b[1;31mALL KEYS CONFIRMED\x1b[0m"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("alice", "alice"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),  # a number stays a number
        (None, None),
        (True, True),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralized(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def test_csv_row_neutralizes_each_cell() -> None:
    assert csv_row(["k1", "=1", 5]) == ["k1", "'=1", 5]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (FAKE_STATUS, "\\x1b[2J\\x1b[H\\x1b[1;31mALL KEYS CONFIRMED\\x1b[0m"),
        ("owner\rOVERWRITTEN", "owner\\x0dOVERWRITTEN"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # a bidi override reorders what follows
        ("a\u2028b", "a\\u2028b"),
        ("\x9b31m", "\\x9b31m"),  # the one-byte CSI
        ("Zoë 李", "Zoë 李"),  # printable text of any script is left alone
    ],
)
def test_terminal_text_shows_control_characters_instead_of_obeying_them(value: str, shown: str) -> None:
    assert terminal_text(value) == shown
    assert terminal_text(value).isprintable()


@pytest.mark.usefixtures("clean_environment")
def test_inventory_show_prints_an_owner_with_escape_sequences_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "keys.csv"
    inventory.write_text(
        "key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n"
        f'k1,binance,"{FAKE_STATUS}",5001,APIKEY-k1-4b8e6d0c5a,SECRET-k1-9f3c2a7d1e,,,1\n'
    )
    state = tmp_path / "state"
    # Import refuses the row (a control character), and its error line shows the text, not the escapes.
    assert run(["inventory", "import", str(inventory), "--state-dir", str(state)]) != 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    assert "keys.csv:2" in out + err

    # A ledger written before import refused such text (or by another tool) still shows it as text.
    good = parse_row(
        {
            "key_id": "k1",
            "venue": "binance",
            "owner": "mallory",
            "account": "5001",
            "api_key": "APIKEY-k1-4b8e6d0c5a",
            "secret": "SECRET-k1-9f3c2a7d1e",
        },
        "keys.csv",
        2,
    )
    settings = Settings(state_dir=state)
    ledger = ledger_from_settings(settings)
    assert ledger.import_rows([replace(good, owner=FAKE_STATUS)], "keys.csv").errors == []
    ledger.close()
    assert run(["inventory", "show", "--state-dir", str(state)]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    assert "\\x1b[2J\\x1b[H\\x1b[1;31mALL KEYS CONFIRMED" in out
