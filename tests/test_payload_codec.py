"""The payload codec: AES-GCM for every Temporal payload, key rotation, tampering, and a real history."""

from __future__ import annotations

import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from keyrevoke.crypto import KeyEncryptionKey, load_kek
from keyrevoke.errors import ConfigurationError, SecretStoreError
from keyrevoke.payload_codec import (
    ENCODING,
    KEY_ID_METADATA,
    PayloadEncryptionCodec,
    iter_payloads,
    payload_codec_from_settings,
)
from keyrevoke.settings import Settings

MARKER = "sk-live-PLAINTEXT-MARKER-7f3a"


# No KEYREVOKE_* from the caller's shell leaks into these tests.
pytestmark = pytest.mark.usefixtures("clean_environment")


def plain_payloads(*values: object) -> list[Payload]:
    return DataConverter.default.payload_converter.to_payloads(list(values))


# --- the codec ----------------------------------------------------------------------------------


async def test_round_trip_hides_data_and_metadata() -> None:
    key = KeyEncryptionKey.generate()
    codec = PayloadEncryptionCodec(key)
    original = plain_payloads(MARKER, {"key_id": "k1"}, None)

    encoded = await codec.encode(original)

    assert len(encoded) == 3
    for payload in encoded:
        assert dict(payload.metadata) == {"encoding": ENCODING, KEY_ID_METADATA: key.key_id.encode()}
        assert MARKER.encode() not in payload.SerializeToString()
        assert b"json/plain" not in payload.SerializeToString()  # the inner encoding is sealed too
    assert await codec.decode(encoded) == original


async def test_each_encryption_uses_a_fresh_nonce() -> None:
    codec = PayloadEncryptionCodec(KeyEncryptionKey.generate())
    [payload] = plain_payloads(MARKER)

    first, second = await codec.encode([payload, payload])

    assert first.data != second.data


async def test_rotation_old_payloads_still_open_and_new_ones_use_the_new_key() -> None:
    old, new = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
    before = await PayloadEncryptionCodec(old).encode(plain_payloads("written before the rotation"))
    rotated = PayloadEncryptionCodec(new, [old])

    assert await rotated.decode(before) == plain_payloads("written before the rotation")
    after = await rotated.encode(plain_payloads("written after"))
    assert after[0].metadata[KEY_ID_METADATA] == new.key_id.encode()

    # A process that only has the old key names the missing one and says what to do.
    with pytest.raises(SecretStoreError, match=f"{new.key_id}.*not loaded.*KEYREVOKE_PAYLOAD_OLD_KEYS"):
        await PayloadEncryptionCodec(old).decode(after)


async def test_tampered_ciphertext_is_refused() -> None:
    codec = PayloadEncryptionCodec(KeyEncryptionKey.generate())
    [sealed] = await codec.encode(plain_payloads(MARKER))

    for position in (0, 12, len(sealed.data) // 2, len(sealed.data) - 1):  # nonce, body, tag
        tampered = Payload()
        tampered.CopyFrom(sealed)
        flipped = bytearray(sealed.data)
        flipped[position] ^= 0x01
        tampered.data = bytes(flipped)
        with pytest.raises(SecretStoreError, match="tampered or corrupted"):
            await codec.decode([tampered])

    truncated = Payload()
    truncated.CopyFrom(sealed)
    truncated.data = sealed.data[:20]
    with pytest.raises(SecretStoreError, match="truncated"):
        await codec.decode([truncated])


async def test_a_payload_cannot_be_moved_to_another_key_id() -> None:
    first, second = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
    codec = PayloadEncryptionCodec(first, [second])
    [sealed] = await codec.encode(plain_payloads(MARKER))

    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = second.key_id.encode()
    with pytest.raises(SecretStoreError, match="tampered"):
        await codec.decode([relabelled])

    unlabelled = Payload()
    unlabelled.CopyFrom(sealed)
    del unlabelled.metadata[KEY_ID_METADATA]
    with pytest.raises(SecretStoreError, match="not loaded"):
        await codec.decode([unlabelled])


async def test_unencrypted_payloads_pass_through_decode() -> None:
    codec = PayloadEncryptionCodec(KeyEncryptionKey.generate())
    original = plain_payloads("from a tool without the codec")

    assert await codec.decode(original) == original


def test_repr_names_key_ids_only() -> None:
    key = KeyEncryptionKey.generate()

    assert key.to_text() not in repr(PayloadEncryptionCodec(key))
    assert key.key_id in repr(PayloadEncryptionCodec(key))


# --- keys from settings ---------------------------------------------------------------------------


def test_the_embedded_default_makes_the_key_file_once(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    path = tmp_path / "payload.key"

    with pytest.raises(ConfigurationError, match="no payload key: set KEYREVOKE_PAYLOAD_KEY or"):
        payload_codec_from_settings(settings, create=False)
    first = payload_codec_from_settings(settings, create=True)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = payload_codec_from_settings(settings, create=True)
    assert again.current_key_id == first.current_key_id
    assert payload_codec_from_settings(settings, create=False).current_key_id == first.current_key_id


def test_an_explicit_key_file_is_never_made(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "payload.key"
    settings = Settings(state_dir=tmp_path, payload_key_file=path)

    with pytest.raises(ConfigurationError, match="KEYREVOKE_PAYLOAD_KEY_FILE") as caught:
        payload_codec_from_settings(settings, create=True)
    assert str(path) in str(caught.value)
    assert not path.exists()

    key = KeyEncryptionKey.generate()
    path.parent.mkdir()
    path.write_text(key.to_text() + "\n")
    assert payload_codec_from_settings(settings, create=True).current_key_id == key.key_id


async def test_keys_from_the_environment_and_old_keys(tmp_path: Path) -> None:
    old1, old2, new = (KeyEncryptionKey.generate() for _ in range(3))
    settings = Settings(
        state_dir=tmp_path,
        payload_key=new.to_text(),
        payload_old_keys=f" {old1.to_text()}, ,{old2.to_text()} ",
    )

    codec = payload_codec_from_settings(settings, create=True)

    assert codec.current_key_id == new.key_id
    assert not (tmp_path / "payload.key").exists()  # a key given in the environment makes no file
    for old in (old1, old2):
        sealed = await PayloadEncryptionCodec(old).encode(plain_payloads(MARKER))
        assert await codec.decode(sealed) == plain_payloads(MARKER)


def test_bad_keys_are_named_without_their_text(tmp_path: Path) -> None:
    short = KeyEncryptionKey.generate().to_text()[:20]
    with pytest.raises(ConfigurationError, match=r"^KEYREVOKE_PAYLOAD_KEY: ") as caught:
        payload_codec_from_settings(Settings(state_dir=tmp_path, payload_key=short), create=True)
    assert short not in str(caught.value)

    good = KeyEncryptionKey.generate().to_text()
    settings = Settings(state_dir=tmp_path, payload_key=good, payload_old_keys=f"{good},{short}")
    with pytest.raises(ConfigurationError, match=r"^KEYREVOKE_PAYLOAD_OLD_KEYS \(key 2\): ") as caught:
        payload_codec_from_settings(settings, create=True)
    assert short not in str(caught.value)


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "payload.key"

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_kek(None, path, create=True), range(16)))

    assert len({key.key_id for key in keys}) == 1
    assert [p.name for p in path.parent.iterdir()] == ["payload.key"]  # no temporary file left behind


# --- a real history -------------------------------------------------------------------------------


@workflow.defn(sandboxed=False)
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return f"echo {text}"


async def test_a_dev_server_history_holds_only_ciphertext(dev_client: Client, queue_prefix: str) -> None:
    codec = dev_client.data_converter.payload_codec
    assert isinstance(codec, PayloadEncryptionCodec)
    workflow_id = f"codec-{uuid.uuid4().hex[:8]}"

    async with Worker(dev_client, task_queue=queue_prefix, workflows=[EchoWorkflow]):
        result = await dev_client.execute_workflow(EchoWorkflow.run, MARKER, id=workflow_id, task_queue=queue_prefix)
    assert result == f"echo {MARKER}"

    # What the server stores, read by a client without the codec.
    plain = Client(dev_client.service_client, namespace=dev_client.namespace)
    handle = plain.get_workflow_handle(workflow_id)
    history = History(events=(await handle.fetch_history()).events)
    payloads = list(iter_payloads(history))

    assert len(payloads) >= 2  # the input and the result
    assert MARKER.encode() not in history.SerializeToString()
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == codec.current_key_id.encode()
    with pytest.raises(KeyError, match="binary/encrypted"):
        await handle.result()
    assert [p.data for p in await codec.decode(payloads)] == [
        f'"{MARKER}"'.encode(),
        f'"echo {MARKER}"'.encode(),
    ]
