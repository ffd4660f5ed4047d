"""Operators are keys, not names: the registry, SSHSIG signatures both ways with OpenSSH, and refusals.

Keys are real OpenSSH Ed25519 keys made by ``ssh-keygen``; signatures keyrevoke makes are checked by
``ssh-keygen -Y verify``, and those ``ssh-keygen -Y sign`` makes are checked by keyrevoke.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError

from activities.operators import OperatorActivities
from keyrevoke.errors import ConfigurationError
from keyrevoke.models import SignedAction, VerifyActionRequest
from keyrevoke.operators import (
    ActionRefused,
    action_message,
    load_operators,
    operators_for,
    read_signed_action,
    sign_action,
    sign_message,
    verify_action,
)
from keyrevoke.settings import Settings

FIFTEEN_MINUTES = timedelta(minutes=15)


def make_key(folder: Path, name: str) -> Path:
    """A fresh OpenSSH Ed25519 key pair, as an engineer has one (``NAME`` and ``NAME.pub``)."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path


def register(operators: Path, *entries: tuple[str, Path]) -> Path:
    """An allowed_signers file: ``name ssh-ed25519 AAAA... comment`` per operator."""
    operators.write_text("".join(f"{name} {key.with_suffix('.pub').read_text()}" for name, key in entries))
    return operators


def ssh_sign(key: Path, message: str, folder: Path, name: str = "action") -> SignedAction:
    path = folder / name
    path.write_text(message)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "keyrevoke", "-f", str(key), str(path)], check=True, capture_output=True
    )
    return read_signed_action(path.with_name(name + ".sig"))


def request(
    signed: SignedAction | None,
    action: str = "pause",
    venue: str = "",
    reason: str = "",
    keys: tuple[str, ...] = (),
    received_at: str = "",
) -> VerifyActionRequest:
    return VerifyActionRequest.of("inc-1", action, signed, venue, reason, keys, received_at)


@pytest.fixture
def alice(tmp_path: Path) -> Path:
    return make_key(tmp_path, "alice")


def test_a_signature_keyrevoke_makes_verifies_with_ssh_keygen(tmp_path: Path, alice: Path) -> None:
    operators = register(tmp_path / "operators", ("alice", alice))
    settings = Settings(state_dir=tmp_path / "state", operators_file=operators, operator_key_file=alice)
    signed = sign_action(settings, "inc-1", "narrow", "bybit", "not affected")
    (tmp_path / "msg").write_text(signed.message)
    (tmp_path / "msg.sig").write_text(signed.signature)
    with (tmp_path / "msg").open() as message:
        checked = subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(operators),
                "-I",
                "alice",
                "-n",
                "keyrevoke",
                "-s",
                str(tmp_path / "msg.sig"),
            ],
            stdin=message,
            capture_output=True,
            text=True,
            check=False,
        )
    assert checked.returncode == 0, checked.stderr
    assert 'Good "keyrevoke" signature for alice' in checked.stdout
    (operator,) = load_operators(operators)
    assert operator.fingerprint in checked.stdout  # the same fingerprint OpenSSH shows
    assert (
        verify_action(
            load_operators(operators), request(signed, "narrow", "bybit", "not affected"), FIFTEEN_MINUTES
        ).fingerprint
        == operator.fingerprint
    )


def test_a_signature_ssh_keygen_makes_verifies_and_names_the_operator(tmp_path: Path, alice: Path) -> None:
    operators = load_operators(register(tmp_path / "operators", ("alice", alice)))
    keys = ("k2", "k1")
    signed = ssh_sign(alice, action_message("inc-1", "confirm", "binance", "", keys), tmp_path)
    operator = verify_action(operators, request(signed, "confirm", "binance", keys=("k1", "k2")), FIFTEEN_MINUTES)
    assert operator.name == "alice"
    assert operator.actor == f"alice ({operators[0].fingerprint})"


def test_refusals_say_why_in_one_line(tmp_path: Path, alice: Path) -> None:
    mallory = make_key(tmp_path, "mallory")
    operators = load_operators(register(tmp_path / "operators", ("alice", alice)))
    message = action_message("inc-1", "pause")
    good = ssh_sign(alice, message, tmp_path)

    def refused(req: VerifyActionRequest, now: datetime | None = None) -> str:
        with pytest.raises(ActionRefused) as caught:
            verify_action(operators, req, FIFTEEN_MINUTES, now)
        text = str(caught.value)
        assert "\n" not in text
        return text

    assert "not signed" in refused(request(None))
    assert "not a registered operator" in refused(request(ssh_sign(mallory, message, tmp_path, "m")))
    # The message is the request: another incident, action, venue, reason or list of keys is refused.
    assert "incident 'inc-1', not 'inc-2'" in refused(VerifyActionRequest.of("inc-2", "pause", good))
    assert "action 'pause', not 'cancel'" in refused(request(good, "cancel"))
    assert "venue '', not 'binance'" in refused(request(good, venue="binance"))
    confirm = ssh_sign(alice, action_message("inc-1", "confirm", "binance", "", ("k1",)), tmp_path, "c")
    assert "keys" in refused(request(confirm, "confirm", "binance", keys=("k1", "k9")))
    # An edited message no longer matches its signature.
    edited = SignedAction(good.message.replace('"pause"', '"cancel"'), good.signature)
    assert "does not verify" in refused(request(edited, "cancel"))
    # Signed in another namespace (say, for git) it is not a keyrevoke signature.
    (tmp_path / "git").write_text(message)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(alice), str(tmp_path / "git")],
        check=True,
        capture_output=True,
    )
    assert "does not verify" in refused(request(read_signed_action(tmp_path / "git.sig")))
    # Stale, and from the future.
    old = ssh_sign(alice, action_message("inc-1", "pause", at=datetime.now(UTC) - timedelta(minutes=16)), tmp_path, "o")
    assert "stale" in refused(request(old))
    assert "ahead of the clock" in refused(request(good), now=datetime.now(UTC) - timedelta(minutes=5))
    not_ours = ssh_sign(alice, json.dumps({"incident": "inc-1"}), tmp_path, "n")
    assert "not a keyrevoke action" in refused(request(not_ours))


def test_operators_file_errors_name_the_line(tmp_path: Path, alice: Path) -> None:
    rsa = tmp_path / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa)], check=True)
    public = alice.with_suffix(".pub").read_text().strip()
    cases = {
        "# operators\nalice\n": "operators:2: not an allowed_signers line",
        f"alice {rsa.with_suffix('.pub').read_text()}": "operators:1: only ssh-ed25519 keys can be operators",
        f"alice {public}\nAlice {public}\n": "operators:2: key SHA256:",
        f"alice cert-authority {public}\n": "operators:1: cert-authority",
        "alice ssh-ed25519 AAAAnotakey\n": "operators:1: the public key does not decode",
        "# nobody yet\n": "registers no operator key",
        f'"al\x1b[2Jice" {public}\n': "operators:1: the operator's name holds control characters",
    }
    for text, expected in cases.items():
        (tmp_path / "operators").write_text(text)
        with pytest.raises(ConfigurationError, match=expected.replace("(", r"\(")):
            load_operators(tmp_path / "operators")
    with pytest.raises(ConfigurationError, match="no such operators file"):
        load_operators(tmp_path / "missing")
    # A key registered for other namespaces only is not an operator of keyrevoke.
    (tmp_path / "operators").write_text(f'bob namespaces="git" {public}\nalice namespaces="git,keyrevoke" {public}\n')
    assert [op.name for op in load_operators(tmp_path / "operators")] == ["alice"]


def test_the_embedded_setup_makes_and_registers_one_operator_key(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", operator="Ops On Duty")
    signed = sign_action(settings, "inc-1", "resume")
    (operator,) = operators_for(settings)
    assert operator.name == "OpsOnDuty"
    assert verify_action([operator], request(signed, "resume"), FIFTEEN_MINUTES).fingerprint == operator.fingerprint
    key = settings.state_dir / "operator.key"
    assert key.stat().st_mode & 0o077 == 0
    # An OpenSSH private key: ssh-keygen reads it and derives the registered public key.
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[1] in (settings.state_dir / "operators").read_text()
    # With an operators file set, nothing is made: the deployment names its operators and keys.
    deployment = Settings(state_dir=tmp_path / "other", operators_file=tmp_path / "ops")
    with pytest.raises(ConfigurationError, match="no such operator key"):
        sign_action(deployment, "inc-1", "resume")
    assert not (tmp_path / "other" / "operator.key").exists()


def test_a_passphrase_protected_key_is_named_with_what_to_do(tmp_path: Path) -> None:
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret words", "-f", str(key)], check=True)
    settings = Settings(state_dir=tmp_path, operators_file=tmp_path / "ops", operator_key_file=key)
    with pytest.raises(ConfigurationError, match="passphrase-protected: sign with `ssh-keygen -Y sign"):
        sign_action(settings, "inc-1", "pause")


async def test_freshness_is_judged_when_temporal_took_the_action(tmp_path: Path, alice: Path) -> None:
    """A start taken while no worker ran is checked later, still fresh; an old signature is not made fresh."""
    operators = register(tmp_path / "operators", ("alice", alice))
    activities = OperatorActivities(Settings(state_dir=tmp_path, operators_file=operators))
    now = datetime.now(UTC)
    signed_then = ssh_sign(alice, action_message("inc-1", "pause", at=now - timedelta(minutes=21)), tmp_path)
    taken = now - timedelta(minutes=20)
    operator = await activities.verify_action(request(signed_then, received_at=taken.isoformat()))
    assert operator.name == "alice"
    with pytest.raises(ApplicationError, match="stale"):
        await activities.verify_action(request(signed_then))
    # A server clock far ahead (the time-skipping test server) ages nothing: the worker's clock is used.
    fresh = ssh_sign(alice, action_message("inc-1", "pause"), tmp_path, "fresh")
    ahead = (now + timedelta(hours=5)).isoformat()
    assert (await activities.verify_action(request(fresh, received_at=ahead))).name == "alice"
    with pytest.raises(ApplicationError, match="not a registered operator"):
        await activities.verify_action(request(ssh_sign(make_key(tmp_path, "eve"), fresh.message, tmp_path, "e")))


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["incident", "action", "venue", "reason", "keys", "keys_sha256", "at", "nonce", "kind"]),
    value=st.one_of(st.text(max_size=12), st.integers()),
)
def test_any_change_to_a_signed_message_is_refused(tmp_path: Path, field: str, value: object) -> None:
    """Whatever one field of a signed action is changed to, its signature no longer verifies."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (tmp_path / "ops").write_text(f"alice {public.decode()}\n")
    operators = load_operators(tmp_path / "ops")
    message = action_message("inc-1", "confirm", "binance", "why", ("k1", "k2"))
    body = json.loads(message)
    assume(body[field] != value)
    edited = json.dumps({**body, field: value}, sort_keys=True, separators=(",", ":")) + "\n"
    signed = SignedAction(edited, sign_message(key, message))
    with pytest.raises(ActionRefused, match="does not verify"):
        verify_action(operators, request(signed, "confirm", "binance", "why", ("k1", "k2")), FIFTEEN_MINUTES)
