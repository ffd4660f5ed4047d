"""State files are private to the user running keyrevoke: 0600 files in 0700 folders, checked at start."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.platform_hook import FileHook, HookRequest
from commander.main import run
from keyrevoke.private_files import open_private, permission_warning, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as on a shared host: what keyrevoke makes must be private anyway."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("clean_environment", "open_umask")
def test_the_ledger_and_its_keys_are_private_and_a_loose_state_dir_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "keys.csv"
    inventory.write_text(
        "key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n"
        "k1,binance,alice,1,APIKEY-k1-4b8e6d0c5a,SECRET-k1-9f3c2a7d1e,,,1\n"
    )
    state = tmp_path / "state" / "deeper"
    assert run(["inventory", "import", str(inventory), "--state-dir", str(state)]) == 0
    assert run(["signing-key", "public", "--state-dir", str(state)]) == 0
    assert mode(state) == 0o700
    assert mode(state.parent) == 0o700
    made = sorted(p.name for p in state.iterdir())
    assert {"ledger.sqlite", "ledger.kek", "signing.key"} <= set(made)
    assert {p.name: mode(p) for p in state.iterdir()} == dict.fromkeys(made, 0o600)
    assert "warning" not in capsys.readouterr().err

    # What an older version (or a careless copy) left readable is named at the next start, in one line.
    os.chmod(state / "ledger.sqlite", 0o644)
    assert run(["inventory", "show", "--state-dir", str(state)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{state / 'ledger.sqlite'} can be read by other users" in err
    assert "chmod -R go-rwx" in err


@pytest.mark.usefixtures("open_umask")
def test_the_hook_file_and_written_files_are_private(tmp_path: Path) -> None:
    hook = FileHook(tmp_path / "hook" / "requests.jsonl")

    async def send() -> None:
        await hook.send(HookRequest("freeze", "inc-1", "k1", "binance", "sha256:00"))
        await hook.close()

    asyncio.run(send())
    assert mode(tmp_path / "hook") == 0o700
    assert mode(tmp_path / "hook" / "requests.jsonl") == 0o600

    existing = tmp_path / "old.txt"
    existing.write_text("readable by all")
    os.chmod(existing, 0o644)
    with open_private(existing, "w") as handle:
        handle.write("now private")
    assert mode(existing) == 0o600
    assert permission_warning(private_dir(tmp_path / "fresh")) is None
