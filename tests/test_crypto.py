"""Secrets at rest: envelope encryption, KEK loading and rotation, fingerprints and hints."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from keyrevoke.crypto import KeyEncryptionKey, SecretBox, fingerprint, key_hint, load_kek
from keyrevoke.errors import ConfigurationError, SecretStoreError

SECRET = "SECRET-9c1f0e77-top"
CONTEXT = "k1/secret"


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.generate()


@pytest.fixture
def box(kek: KeyEncryptionKey) -> SecretBox:
    return SecretBox(kek)


def flip(sealed: str, index: int) -> str:
    blob = bytearray(base64.b64decode(sealed))
    blob[index] ^= 0x01
    return base64.b64encode(bytes(blob)).decode()


# --- sealing and opening ----------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [SECRET, "", "ünïcödé-🔑", "x" * 4096])
def test_seal_then_open_gives_the_plaintext_back(box: SecretBox, plaintext: str) -> None:
    sealed = box.seal(plaintext, CONTEXT)

    assert box.open(sealed, CONTEXT) == plaintext
    if plaintext:
        assert plaintext not in sealed
    assert not box.needs_reseal(sealed)


def test_each_seal_is_different(box: SecretBox) -> None:
    assert box.seal(SECRET, CONTEXT) != box.seal(SECRET, CONTEXT)


def test_a_sealed_value_opens_only_in_its_own_context(box: SecretBox) -> None:
    sealed = box.seal(SECRET, "k1/secret")

    for other in ("k2/secret", "k1/api_key", ""):
        with pytest.raises(SecretStoreError, match="does not open") as caught:
            box.open(sealed, other)
        assert SECRET not in str(caught.value)


@pytest.mark.parametrize("index", [3, 11, 20, 40, 75, -1])  # kek id, wrap nonce, wrapped key, body, tag
def test_a_tampered_value_does_not_open(box: SecretBox, index: int) -> None:
    sealed = box.seal(SECRET, CONTEXT)

    with pytest.raises(SecretStoreError) as caught:
        box.open(flip(sealed, index), CONTEXT)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("length", [0, 2, 11, 15, 22, 40, 70, 90])
def test_a_truncated_value_does_not_open(box: SecretBox, length: int) -> None:
    blob = base64.b64decode(box.seal(SECRET, CONTEXT))

    with pytest.raises(SecretStoreError):
        box.open(base64.b64encode(blob[:length]).decode(), CONTEXT)


@pytest.mark.parametrize("garbage", ["not base64!", "a", "QUJD", "ÿÿÿ"])
def test_garbage_does_not_open(box: SecretBox, garbage: str) -> None:
    with pytest.raises(SecretStoreError):
        box.open(garbage, CONTEXT)


def test_a_value_sealed_under_another_kek_names_the_missing_kek(box: SecretBox) -> None:
    other = KeyEncryptionKey.generate()
    sealed = SecretBox(other).seal(SECRET, CONTEXT)

    with pytest.raises(SecretStoreError, match=other.key_id):
        box.open(sealed, CONTEXT)


def test_rotation_old_values_open_with_the_old_kek_loaded_and_need_resealing() -> None:
    old, new = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
    sealed_old = SecretBox(old).seal(SECRET, CONTEXT)
    rotated = SecretBox(new, older=(old,))

    assert rotated.open(sealed_old, CONTEXT) == SECRET
    assert rotated.needs_reseal(sealed_old)

    resealed = rotated.seal(rotated.open(sealed_old, CONTEXT), CONTEXT)
    assert not rotated.needs_reseal(resealed)
    assert SecretBox(new).open(resealed, CONTEXT) == SECRET  # the old KEK is no longer needed
    with pytest.raises(SecretStoreError):
        SecretBox(old).open(resealed, CONTEXT)


# --- the key-encryption key -------------------------------------------------------------------------


def test_kek_text_round_trip_and_repr_hides_the_material(kek: KeyEncryptionKey) -> None:
    text = kek.to_text()

    assert KeyEncryptionKey.from_text(text + "\n", "test") == kek
    assert len(kek.key_id) == 8
    assert text not in repr(kek)
    assert kek.key_id in repr(kek)


def test_kek_must_be_32_bytes() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        KeyEncryptionKey(b"short")


def test_load_kek_prefers_the_environment_value(tmp_path: Path, kek: KeyEncryptionKey) -> None:
    file_kek = KeyEncryptionKey.generate()
    path = tmp_path / "ledger.kek"
    path.write_text(file_kek.to_text())

    assert load_kek(kek.to_text(), path, create=False) == kek
    assert load_kek(None, path, create=False) == file_kek
    assert load_kek("", path, create=False) == file_kek


def test_load_kek_creates_a_private_file_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.kek"

    created = load_kek(None, path, create=True)

    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_kek(None, path, create=True) == created  # the second start reads it, never replaces it
    assert load_kek(None, path, create=False) == created


def test_load_kek_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.kek"

    with pytest.raises(ConfigurationError, match="KEYREVOKE_LEDGER_KEK") as caught:
        load_kek(None, path, create=False)
    assert str(path) in str(caught.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("@@@not-base64@@@", "base64|32 bytes"),
        ("abc", "base64"),
        (base64.urlsafe_b64encode(b"x" * 16).decode(), "got 16"),
        (base64.urlsafe_b64encode(b"x" * 33).decode(), "got 33"),
        ("", "got 0"),
    ],
)
def test_a_bad_kek_names_where_it_came_from_and_not_its_text(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason) as from_env:
        KeyEncryptionKey.from_text(text, "KEYREVOKE_LEDGER_KEK")
    assert str(from_env.value).startswith("KEYREVOKE_LEDGER_KEK:")

    path = tmp_path / "ledger.kek"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=reason) as from_file:
        load_kek(None, path, create=True)
    assert str(from_file.value).startswith(f"{path}:")
    if text:
        assert text not in str(from_env.value)
        assert text not in str(from_file.value)


def test_a_bad_kek_in_the_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"^KEYREVOKE_LEDGER_KEK: must decode to 32 bytes"):
        load_kek(base64.urlsafe_b64encode(b"k" * 31).decode(), tmp_path / "absent", create=True)
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("content", [os.urandom(32), b"\xff" * 44])
def test_a_binary_kek_file_is_a_configuration_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ledger.kek"
    path.write_bytes(content)

    with pytest.raises(ConfigurationError, match=str(path)):
        load_kek(None, path, create=False)


def test_an_unreadable_kek_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=str(tmp_path)):
        load_kek(None, tmp_path, create=False)  # a folder where the file should be


# --- fingerprints and hints -------------------------------------------------------------------------


def test_fingerprint_is_stable_short_and_hides_the_key() -> None:
    key = "AKIAEXAMPLEKEY1234567890"

    assert fingerprint(key) == fingerprint(key)
    assert fingerprint(key) != fingerprint(key + "x")
    assert fingerprint(key).startswith("sha256:")
    assert len(fingerprint(key)) == len("sha256:") + 16
    assert key not in fingerprint(key)


@pytest.mark.parametrize(
    ("api_key", "hint"),
    [("AKIAEXAMPLEKEY1234567890", "AKIA…7890"), ("abcdefghijklm", "abcd…jklm"), ("abcdefghijkl", "…"), ("", "…")],
)
def test_key_hint_shows_only_the_ends_of_long_keys(api_key: str, hint: str) -> None:
    assert key_hint(api_key) == hint
