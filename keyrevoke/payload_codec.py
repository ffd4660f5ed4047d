"""Encryption of every Temporal payload: defence in depth, since workflows carry no secrets anyway.

Each payload is serialised whole (its metadata and its data) and sealed with AES-256-GCM under the
current payload key. What the Temporal server stores is a payload with encoding ``binary/encrypted``
and the key's id in its metadata, so that after a key rotation payloads written under an older key
still open, as long as that key is listed in ``KEYREVOKE_PAYLOAD_OLD_KEYS``.

Decoding leaves a payload that is not ``binary/encrypted`` as it is: one written by a tool without
this codec (an operator's ``temporal workflow signal``, say) still reads, and refusing it would only
wedge the workflow that received it. Confidentiality comes from encoding, which always encrypts;
who may write to the namespace is the Temporal server's access control.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError, Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from keyrevoke.crypto import KeyEncryptionKey, load_kek
from keyrevoke.errors import SecretStoreError
from keyrevoke.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"

_NONCE = 12
_TAG = 16
# Bound into every ciphertext, so that a payload sealed under one key id never passes for another's.
_AAD_PREFIX = b"keyrevoke/payload/v1/"
# Key ids are short hex digests; anything longer in a payload's metadata is not ours.
_KEY_ID_MAX = 32


class PayloadEncryptionCodec(PayloadCodec):
    """AES-256-GCM for payloads: seals under ``current``, opens under ``current`` or any of ``older``."""

    def __init__(self, current: KeyEncryptionKey, older: Sequence[KeyEncryptionKey] = ()) -> None:
        self.current_key_id = current.key_id
        self._ciphers = {key.key_id: AESGCM(key.material) for key in (*older, current)}

    def __repr__(self) -> str:
        return f"PayloadEncryptionCodec(current={self.current_key_id}, keys={sorted(self._ciphers)})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload under the current key."""
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each ``binary/encrypted`` payload; raise ``SecretStoreError`` if one does not open."""
        return [self.open(payload) for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        """One payload, encrypted (the synchronous core of ``encode``)."""
        key_id = self.current_key_id
        nonce = os.urandom(_NONCE)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), _aad(key_id))
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        """One payload, decrypted (the synchronous core of ``decode``)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id[:_KEY_ID_MAX].decode("ascii", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(sorted(self._ciphers))
            raise SecretStoreError(
                f"payload encrypted under payload key {key_id or '(none)'!r}, which is not loaded (loaded: {known}); "
                "after a rotation, list the old key in KEYREVOKE_PAYLOAD_OLD_KEYS"
            )
        data = payload.data
        if len(data) < _NONCE + _TAG:
            raise SecretStoreError(f"payload under key {key_id} is truncated ({len(data)} bytes)")
        try:
            plaintext = cipher.decrypt(data[:_NONCE], data[_NONCE:], _aad(key_id))
        except InvalidTag:
            raise SecretStoreError(f"payload under key {key_id} does not decrypt: tampered or corrupted") from None
        decoded = Payload()
        try:
            decoded.ParseFromString(plaintext)
        except DecodeError:
            # Authentic ciphertext that is not a payload: sealed by something else under our key.
            raise SecretStoreError(f"payload under key {key_id} decrypts to something that is not a payload") from None
        return decoded


def _aad(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode()


def payload_codec_from_settings(settings: Settings, create: bool) -> PayloadEncryptionCodec:
    """The codec with the payload key from ``KEYREVOKE_PAYLOAD_KEY`` or the key file, and the old keys.

    ``create`` allows making the key file when it is missing, and only the embedded default (neither
    the key nor its file given, ``KEYREVOKE_EMBEDDED`` true) ever does, under the state directory: a
    process that reads payloads others wrote (the codec server) passes ``False``, since a key of its
    own would open nothing.
    """
    env_key = settings.payload_key.get_secret_value() if settings.payload_key else None
    embedded = settings.embedded and not env_key and settings.payload_key_file is None
    current = load_kek(
        env_key,
        settings.resolved_payload_key_file(),
        create=create and embedded,
        env_name="KEYREVOKE_PAYLOAD_KEY",
        what="payload key",
    )
    older: list[KeyEncryptionKey] = []
    if settings.payload_old_keys:
        texts = [t.strip() for t in settings.payload_old_keys.get_secret_value().split(",")]
        for number, text in enumerate((t for t in texts if t), start=1):
            older.append(KeyEncryptionKey.from_text(text, f"KEYREVOKE_PAYLOAD_OLD_KEYS (key {number})"))
    return PayloadEncryptionCodec(current, older)


def iter_payloads(message: Message) -> Iterator[Payload]:
    """Every ``Payload`` inside a protobuf message (a history event, a whole history), depth first.

    For audits of exported histories: what a Temporal server stores, field by field.
    """
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            children: Iterable[object] = (value,)
        elif hasattr(value, "values"):
            # Map fields (memo, header, search-attribute fields): their values are the messages.
            children = value.values()
        else:
            children = value  # a repeated field
        for child in children:
            if isinstance(child, Message):
                yield from iter_payloads(child)
