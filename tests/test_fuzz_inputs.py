"""Fuzzing what humans hand the CLI: settings, inventory files, owners files, arguments.

Whatever the input, the command answers with a clear one-line error (exit code 2, or 1 for rejected
inventory rows) and never a traceback, and nothing already in the ledger is lost or changed.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commander.incidents import read_owners
from commander.main import run
from keyrevoke.errors import InputError
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.settings import Settings

GOOD = (
    "key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n"
    "f1,binance,alice,11,FUZZAPIKEY0000000001,FUZZSECRET0000000001,,,\n"
    "f2,bybit,bob,12,FUZZAPIKEY0000000002,FUZZSECRET0000000002,,self,3\n"
)
SETTING_NAMES = (
    "KEYREVOKE_BATCH_SIZE",
    "KEYREVOKE_TEMPORAL_ADDRESS",
    "KEYREVOKE_VENUE_URLS",
    "KEYREVOKE_VERIFY_DEADLINE_SECONDS",
    "KEYREVOKE_LEDGER_URL",
    "KEYREVOKE_LEDGER_KEK",
    "KEYREVOKE_WORKER_HTTP_PORT",
    "KEYREVOKE_HOOK_URL",
)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state folder whose ledger already holds two keys."""
    folder = tmp_path_factory.mktemp("fuzz")
    inventory = tmp_path_factory.mktemp("fuzz-input") / "good.csv"  # outside the (private) state folder
    inventory.write_text(GOOD)
    saved = {k: v for k, v in os.environ.items() if k.startswith("KEYREVOKE_")}
    for name in saved:
        del os.environ[name]
    os.environ["KEYREVOKE_STATE_DIR"] = str(folder)
    assert run(["inventory", "import", str(inventory)]) == 0
    yield folder
    del os.environ["KEYREVOKE_STATE_DIR"]
    os.environ.update(saved)


def _ledger_rows(folder: Path) -> list[dict[str, object]]:
    ledger = ledger_from_settings(Settings(state_dir=folder))
    try:
        return ledger.list_keys()
    finally:
        ledger.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(SETTING_NAMES), value=text)
def test_a_wrong_setting_is_named_and_loses_nothing(
    state: Path, name: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _ledger_rows(state)
    os.environ[name] = value
    try:
        code = run(["inventory", "show", "--json"])
    finally:
        del os.environ[name]
    _, err = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("keyrevoke: error:")
        assert len(err.strip().splitlines()) <= 3
    assert _ledger_rows(state) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400) | text.map(str.encode))
def test_a_malformed_inventory_changes_nothing_already_recorded(
    state: Path, body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _ledger_rows(state)
    path = state / "fuzzed.csv"
    path.write_bytes(b"key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n" + body)
    code = run(["inventory", "import", str(path)])
    _, err = capsys.readouterr()
    assert code in (0, 1, 2)
    assert "Traceback" not in err
    after = _ledger_rows(state)
    assert after[: len(before)] == before or all(row in after for row in before)
    for secret in ("FUZZSECRET0000000001", "FUZZSECRET0000000002"):
        assert secret not in err


@settings(max_examples=80, deadline=None)
@given(body=text)
def test_an_owners_file_is_read_or_refused_clearly(tmp_path_factory: pytest.TempPathFactory, body: str) -> None:
    path = tmp_path_factory.mktemp("owners") / "owners.txt"
    path.write_text(body, encoding="utf-8")
    try:
        owners = read_owners(path)
    except InputError as error:
        refusal = str(error)
    else:
        refusal = ""
        assert owners
        assert all(owner and not any(ch.isspace() for ch in owner) for owner in owners)
    if refusal:
        assert str(path) in refusal


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    argv=st.lists(
        st.sampled_from(["incident", "inventory", "show", "report", "status", "--venue", "--json", "--id", "x", "-v"])
        | st.text(alphabet=string.ascii_letters + "-_", max_size=8),
        max_size=5,
    )
)
def test_any_arguments_end_in_a_clear_answer(state: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    before = _ledger_rows(state)
    try:
        code = run(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    _, err = capsys.readouterr()
    assert code in (0, 1, 2)
    assert "Traceback" not in err
    assert _ledger_rows(state) == before
