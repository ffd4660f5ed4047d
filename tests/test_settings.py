"""Settings: defaults that run the embedded set-up, KEYREVOKE_* overrides, and wrong values named."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from keyrevoke.crypto import KeyEncryptionKey
from keyrevoke.errors import ConfigurationError
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEYREVOKE_* from the caller's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("KEYREVOKE_"):
            monkeypatch.delenv(name)


def test_defaults_describe_the_embedded_set_up() -> None:
    settings = Settings()

    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.temporal_namespace == "default"
    assert settings.batch_size == 25
    assert settings.venue_urls == {}
    assert settings.ledger_kek is None
    assert settings.resolved_ledger_url() == f"sqlite:///{Path('.state') / 'ledger.sqlite'}"
    assert settings.resolved_kek_file() == Path(".state") / "ledger.kek"
    assert settings.resolved_masters_file() == Path(".state") / "masters.json"
    assert settings.resolved_hook_file() == Path(".state") / "platform-hook.jsonl"
    assert settings.control_queue == "keyrevoke-control"
    assert settings.venue_queue("binance") == "keyrevoke-venue-binance"


def test_environment_variables_override_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kek = KeyEncryptionKey.generate().to_text()
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KEYREVOKE_TEMPORAL_ADDRESS", "temporal.prod.internal:7233")
    monkeypatch.setenv("KEYREVOKE_TEMPORAL_NAMESPACE", "security")
    monkeypatch.setenv("KEYREVOKE_TASK_QUEUE_PREFIX", "kr")
    monkeypatch.setenv("KEYREVOKE_BATCH_SIZE", "100")
    monkeypatch.setenv("KEYREVOKE_VENUE_ACTIVITIES_PER_SECOND", "12.5")
    monkeypatch.setenv("KEYREVOKE_VENUE_URLS", '{"binance": "http://127.0.0.1:8800"}')
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK", kek)
    monkeypatch.setenv("KEYREVOKE_SOMETHING_UNKNOWN", "ignored")

    settings = Settings()

    assert settings.temporal_address == "temporal.prod.internal:7233"
    assert settings.temporal_namespace == "security"
    assert settings.batch_size == 100
    assert settings.venue_activities_per_second == 12.5
    assert settings.venue_urls == {"binance": "http://127.0.0.1:8800"}
    assert settings.resolved_ledger_url() == f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    assert settings.resolved_kek_file() == tmp_path / "ledger.kek"
    assert settings.control_queue == "kr-control"
    assert settings.venue_queue("bybit") == "kr-venue-bybit"
    assert settings.ledger_kek is not None
    assert settings.ledger_kek.get_secret_value() == kek
    assert kek not in repr(settings)
    assert kek not in str(settings)


def test_explicit_paths_win_over_the_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KEYREVOKE_LEDGER_URL", "postgresql://ledger@db/keyrevoke")
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK_FILE", str(tmp_path / "kek"))
    monkeypatch.setenv("KEYREVOKE_HOOK_FILE", str(tmp_path / "hook.jsonl"))

    settings = Settings()

    assert settings.resolved_ledger_url() == "postgresql://ledger@db/keyrevoke"
    assert settings.resolved_kek_file() == tmp_path / "kek"
    assert settings.resolved_hook_file() == tmp_path / "hook.jsonl"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.batch_size = 3


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("KEYREVOKE_TEMPORAL_ADDRESS", "nohostport", "temporal_address"),
        ("KEYREVOKE_TEMPORAL_ADDRESS", "host:port", "temporal_address"),
        ("KEYREVOKE_TEMPORAL_ADDRESS", ":7233", "temporal_address"),
        ("KEYREVOKE_BATCH_SIZE", "0", "batch_size"),
        ("KEYREVOKE_BATCH_SIZE", "501", "batch_size"),
        ("KEYREVOKE_BATCH_SIZE", "lots", "batch_size"),
        ("KEYREVOKE_BATCHES_IN_FLIGHT", "0", "batches_in_flight"),
        ("KEYREVOKE_REQUEST_ATTEMPTS", "0", "request_attempts"),
        ("KEYREVOKE_VENUE_ACTIVITIES_PER_SECOND", "0", "venue_activities_per_second"),
        ("KEYREVOKE_VERIFY_DEADLINE_SECONDS", "-1", "verify_deadline_seconds"),
        ("KEYREVOKE_WORKER_HTTP_PORT", "70000", "worker_http_port"),
        ("KEYREVOKE_VENUE_URLS", '{"binance":"ftp://x"}', "venue_urls"),
        ("KEYREVOKE_VENUE_URLS", '["http://x"]', "venue_urls"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as caught:
        Settings()

    assert {str(error["loc"][0]) for error in caught.value.errors()} == {field}
    assert field in str(caught.value)


def test_a_malformed_json_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYREVOKE_VENUE_URLS", "{not json")

    with pytest.raises(SettingsError, match="venue_urls"):
        Settings()


def test_a_wrong_venue_url_names_the_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYREVOKE_VENUE_URLS", '{"binance": "http://ok", "bybit": "ftp://x"}')

    with pytest.raises(ValidationError, match="bybit"):
        Settings()


# --- opening the ledger the way the settings say ----------------------------------------------------


def test_the_embedded_default_makes_its_ledger_and_kek(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(tmp_path))

    ledger = ledger_from_settings(Settings())
    try:
        assert ledger.list_keys() == []
    finally:
        ledger.close()

    assert (tmp_path / "ledger.sqlite").is_file()
    assert stat.S_IMODE((tmp_path / "ledger.kek").stat().st_mode) == 0o600


def test_a_kek_file_that_was_named_is_never_made_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK_FILE", str(tmp_path / "mounted" / "kek"))

    with pytest.raises(ConfigurationError, match="mounted"):
        ledger_from_settings(Settings())
    assert not (tmp_path / "mounted" / "kek").exists()


def test_a_kek_in_the_environment_is_used_and_no_file_is_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kek = KeyEncryptionKey.generate()
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK", kek.to_text())

    ledger = ledger_from_settings(Settings())
    try:
        assert ledger.box.current == kek
    finally:
        ledger.close()
    assert not (tmp_path / "ledger.kek").exists()


def _deployed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """KEYREVOKE_EMBEDDED=false with a ledger URL and hook URL and every key left out: a pod missing Secret keys."""
    state = tmp_path / "state"
    monkeypatch.setenv("KEYREVOKE_EMBEDDED", "false")
    monkeypatch.setenv("KEYREVOKE_STATE_DIR", str(state))
    monkeypatch.setenv("KEYREVOKE_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    monkeypatch.setenv("KEYREVOKE_HOOK_URL", "http://127.0.0.1:9/hook")
    return state


def test_outside_the_embedded_set_up_a_missing_key_is_an_error_never_a_new_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from keyrevoke.payload_codec import payload_codec_from_settings
    from keyrevoke.signing import load_signing_key

    state = _deployed(monkeypatch, tmp_path)
    settings = Settings()

    with pytest.raises(ConfigurationError, match="no key-encryption key: set KEYREVOKE_LEDGER_KEK"):
        ledger_from_settings(settings)
    with pytest.raises(ConfigurationError, match="no payload key: set KEYREVOKE_PAYLOAD_KEY"):
        payload_codec_from_settings(settings, create=True)
    with pytest.raises(ConfigurationError, match="no signing key: set KEYREVOKE_SIGNING_KEY"):
        load_signing_key(settings)
    assert not state.exists(), "no key file may be made outside the embedded set-up"


def test_outside_the_embedded_set_up_the_ledger_and_hook_urls_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from workers.runner import platform_hook

    _deployed(monkeypatch, tmp_path)
    monkeypatch.delenv("KEYREVOKE_LEDGER_URL")
    monkeypatch.delenv("KEYREVOKE_HOOK_URL")
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK", KeyEncryptionKey.generate().to_text())
    settings = Settings()

    with pytest.raises(ConfigurationError, match="no ledger: set KEYREVOKE_LEDGER_URL"):
        ledger_from_settings(settings)
    with pytest.raises(ConfigurationError, match="no platform hook: set KEYREVOKE_HOOK_URL"):
        platform_hook(settings)


def test_outside_the_embedded_set_up_the_keys_from_the_secret_store_are_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from keyrevoke.payload_codec import payload_codec_from_settings
    from keyrevoke.signing import load_signing_key, public_key_text

    state = _deployed(monkeypatch, tmp_path)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    keys = {name: KeyEncryptionKey.generate() for name in ("ledger.kek", "payload.key", "signing.key")}
    for name, key in keys.items():
        (secrets / name).write_text(key.to_text() + "\n")
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK_FILE", str(secrets / "ledger.kek"))
    monkeypatch.setenv("KEYREVOKE_PAYLOAD_KEY_FILE", str(secrets / "payload.key"))
    monkeypatch.setenv("KEYREVOKE_SIGNING_KEY_FILE", str(secrets / "signing.key"))
    settings = Settings()

    assert payload_codec_from_settings(settings, create=True).current_key_id == keys["payload.key"].key_id
    ledger_from_settings(settings)  # opens under the given KEK
    signing = load_signing_key(settings)
    again = load_signing_key(Settings())
    assert public_key_text(signing.public_key()) == public_key_text(again.public_key())
    assert not state.exists()


async def test_outside_the_embedded_set_up_the_operators_file_is_required_and_no_operator_key_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A deployment's process never registers an operator key of its own: it would refuse the others'."""
    from temporalio.exceptions import ApplicationError

    from activities.operators import OperatorActivities
    from keyrevoke.models import VerifyActionRequest
    from keyrevoke.operators import operators_for, sign_action

    state = _deployed(monkeypatch, tmp_path)
    settings = Settings()
    needed = "no operators file: set KEYREVOKE_OPERATORS_FILE"

    with pytest.raises(ConfigurationError, match=needed):
        operators_for(settings)
    with pytest.raises(ConfigurationError, match=needed):
        sign_action(settings, "inc-1", "start")
    # The control worker says so to the commander instead of trusting a key of its own.
    signed = sign_action(Settings(embedded=True, state_dir=tmp_path / "laptop"), "inc-1", "pause")
    with pytest.raises(ApplicationError, match=needed):
        await OperatorActivities(settings).verify_action(VerifyActionRequest.of("inc-1", "pause", signed))
    # Through the CLI: one line, exit 2, nothing made.
    keyrevoke = Path(sys.executable).parent / "keyrevoke"
    result = subprocess.run(
        [str(keyrevoke), "incident", "start", "--id", "inc-1"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"keyrevoke: error: {needed}"), line
    assert not state.exists(), "no operator key or operators file may be made outside the embedded set-up"
