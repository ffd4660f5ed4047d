"""OpenPGP encryption of escalation packets, by GnuPG (the ``gpg`` binary) through python-gnupg.

Every use runs in a private, temporary GnuPG home that holds the one recipient's public key and is
removed afterwards: nothing of the operator's own keyrings is read or changed, and nothing is left.
The plaintext streams into ``gpg`` from an iterator of chunks; only the armored ciphertext reaches the
disk, in a file of mode 0600.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gnupg

from keyrevoke.errors import ConfigurationError

GPG_BINARY = "gpg"


class OpenPgpError(ConfigurationError):
    """A recipient's key cannot be used, or GnuPG failed to encrypt."""


@dataclass(frozen=True)
class Recipient:
    """An OpenPGP public key to encrypt to, read from an armored key file."""

    key_file: Path
    fingerprint: str
    user_ids: tuple[str, ...]


def read_recipient(key_file: Path, where: str) -> Recipient:
    """Check that ``key_file`` holds exactly one OpenPGP public key that can encrypt; ``where`` names its origin."""
    if not key_file.is_file():
        raise OpenPgpError(f"{where}: OpenPGP public key file {key_file} does not exist")
    with _private_home() as gpg:
        found = gpg.import_keys_file(str(key_file))
        fingerprints = [f for f in (found.fingerprints or []) if f]
        if len(set(fingerprints)) != 1:
            raise OpenPgpError(
                f"{where}: {key_file} must hold exactly one OpenPGP public key (found {len(set(fingerprints))})"
            )
        keys = gpg.list_keys()
        key = keys[0]
        if "e" not in str(key.get("cap", "")).lower():
            raise OpenPgpError(f"{where}: the OpenPGP key in {key_file} cannot encrypt (expired, revoked or sign-only)")
        return Recipient(key_file, str(key["fingerprint"]), tuple(str(uid) for uid in key.get("uids", [])))


def encrypt_stream(chunks: Iterator[bytes], recipient: Recipient, output: Path) -> None:
    """Encrypt what ``chunks`` yields to ``recipient`` into ``output`` (ASCII-armored, mode 0600).

    The chunks are read as ``gpg`` consumes them, so the plaintext is never whole in memory; an
    error raised by the iterator fails the encryption and no output is left behind.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    # gpg creates its output with the process's umask: it writes inside a folder only we may enter,
    # and the file is made 0600 before it is moved into place.
    staging = Path(tempfile.mkdtemp(prefix=".sealing-", dir=output.parent))
    try:
        sealed = staging / output.name
        reader = _ChunkReader(chunks)
        with _private_home() as gpg:
            gpg.import_keys_file(str(recipient.key_file))
            result = gpg.encrypt_file(
                reader,
                [recipient.fingerprint],
                armor=True,
                always_trust=True,  # the key was named by the operator in the contacts file
                output=str(sealed),
            )
        if reader.error is not None:
            raise reader.error
        if not result.ok or not sealed.is_file():
            raise OpenPgpError(f"gpg could not encrypt to {recipient.fingerprint}: {result.status or 'no status'}")
        sealed.chmod(0o600)
        sealed.replace(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _private_home:
    """A temporary GnuPG home (0700) for one operation, removed afterwards."""

    def __enter__(self) -> gnupg.GPG:
        if shutil.which(GPG_BINARY) is None:
            raise OpenPgpError("the gpg binary (GnuPG) is not installed: escalation packets need it")
        # A short path: gpg's sockets must fit in a Unix socket name.
        self._home = tempfile.mkdtemp(prefix="kr-gpg-")
        os.chmod(self._home, 0o700)
        return gnupg.GPG(gpgbinary=GPG_BINARY, gnupghome=self._home)

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self._home, ignore_errors=True)


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks; keeps the iterator's error for the caller."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except Exception as error:
                # gpg then sees a short input; the caller raises this instead of using the output.
                self.error = error
                raise
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
