"""Secrets at rest: AES-GCM envelope encryption, and the fingerprints that stand in for keys.

Each sealed value gets a fresh 256-bit data key; the data key is sealed by the key-encryption key
(KEK), whose short id travels with the value so that a KEK can be rotated and old values still open.
The associated data binds a ciphertext to the key id and field it belongs to, so sealed values cannot
be swapped between rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyrevoke.errors import ConfigurationError, SecretStoreError
from keyrevoke.private_files import private_dir

_FORMAT = b"kr1"
_NONCE = 12
_KEK_ID_LEN = 8


def fingerprint(api_key: str) -> str:
    """A stable, non-reversible reference to an API key that exchanges and humans can match."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def key_hint(api_key: str) -> str:
    """The first and last four characters, as exchanges show keys in their own consoles."""
    if len(api_key) <= 12:
        return "…"
    return f"{api_key[:4]}…{api_key[-4:]}"


@dataclass(frozen=True, repr=False)
class KeyEncryptionKey:
    """A 32-byte AES key and its id (the first bytes of its SHA-256)."""

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != 32:
            raise ConfigurationError("the key-encryption key must be 32 bytes (urlsafe base64 of 32 bytes)")

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(id={self.key_id})"

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.material).hexdigest()[:_KEK_ID_LEN]

    @classmethod
    def from_text(cls, text: str, where: str) -> KeyEncryptionKey:
        try:
            material = base64.urlsafe_b64decode(text.strip().encode())
        except (binascii.Error, ValueError) as error:
            raise ConfigurationError(f"{where}: not valid urlsafe base64") from error
        if len(material) != 32:
            raise ConfigurationError(f"{where}: must decode to 32 bytes, got {len(material)}")
        return cls(material)

    @classmethod
    def generate(cls) -> KeyEncryptionKey:
        return cls(secrets.token_bytes(32))

    def to_text(self) -> str:
        return base64.urlsafe_b64encode(self.material).decode()


def load_kek(
    env_value: str | None,
    path: Path,
    *,
    create: bool,
    env_name: str = "KEYREVOKE_LEDGER_KEK",
    what: str = "key-encryption key",
) -> KeyEncryptionKey:
    """The KEK from the environment value if given, else from ``path``.

    With ``create`` (the embedded default only) a missing file is made once, readable by its owner only.
    ``env_name`` (the variable the value came from; ``<env_name>_FILE`` names the file) and ``what``
    only shape error messages, so that the same loader serves the payload key too.
    """
    if env_value:
        return KeyEncryptionKey.from_text(env_value, env_name)
    if path.exists():
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"{path}: cannot read the {what} ({type(error).__name__})") from None
        return KeyEncryptionKey.from_text(text, str(path))
    if not create:
        raise ConfigurationError(f"no {what}: set {env_name} or {env_name}_FILE ({path} does not exist)")
    private_dir(path.parent)
    kek = KeyEncryptionKey.generate()
    # Processes of the embedded set-up may start together: the key is written to a private temporary
    # file and linked into place, so the file appears whole or not at all and the first key made wins.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(kek.to_text() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return load_kek(None, path, create=False, env_name=env_name, what=what)
    finally:
        os.unlink(temporary)
    return kek


class SecretBox:
    """Seals and opens secrets with envelope encryption under one current KEK (and older ones to open)."""

    def __init__(self, current: KeyEncryptionKey, older: tuple[KeyEncryptionKey, ...] = ()) -> None:
        self.current = current
        self._by_id = {k.key_id: k for k in (*older, current)}

    def seal(self, plaintext: str, context: str) -> str:
        """Encrypt ``plaintext``; ``context`` (e.g. ``"<key_id>/secret"``) must be given again to open it."""
        aad = context.encode()
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce, data_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = AESGCM(self.current.material).encrypt(wrap_nonce, data_key, aad)
        body = AESGCM(data_key).encrypt(data_nonce, plaintext.encode(), aad)
        blob = _FORMAT + self.current.key_id.encode() + wrap_nonce + wrapped + data_nonce + body
        return base64.b64encode(blob).decode()

    def open(self, sealed: str, context: str) -> str:
        """Decrypt a value made by ``seal`` with the same ``context``."""
        try:
            blob = base64.b64decode(sealed.encode(), validate=True)
        except (binascii.Error, ValueError) as error:
            raise SecretStoreError(f"{context}: sealed value is not base64") from error
        if not blob.startswith(_FORMAT):
            raise SecretStoreError(f"{context}: unknown sealed-value format")
        offset = len(_FORMAT)
        kek_id = blob[offset : offset + _KEK_ID_LEN].decode(errors="replace")
        offset += _KEK_ID_LEN
        kek = self._by_id.get(kek_id)
        if kek is None:
            raise SecretStoreError(f"{context}: sealed under key-encryption key {kek_id}, which is not loaded")
        wrap_nonce = blob[offset : offset + _NONCE]
        offset += _NONCE
        wrapped = blob[offset : offset + 48]  # 32-byte data key + 16-byte tag
        offset += 48
        data_nonce = blob[offset : offset + _NONCE]
        body = blob[offset + _NONCE :]
        aad = context.encode()
        try:
            data_key = AESGCM(kek.material).decrypt(wrap_nonce, wrapped, aad)
            return AESGCM(data_key).decrypt(data_nonce, body, aad).decode()
        except (InvalidTag, ValueError) as error:  # ValueError: truncated blob (nonce too short)
            raise SecretStoreError(f"{context}: sealed value does not open (tampered or wrong key)") from error

    def needs_reseal(self, sealed: str) -> bool:
        """True when ``sealed`` was made under another KEK than the current one."""
        blob = base64.b64decode(sealed.encode())
        return blob[len(_FORMAT) : len(_FORMAT) + _KEK_ID_LEN].decode() != self.current.key_id
