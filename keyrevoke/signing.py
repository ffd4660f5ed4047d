"""The deployment's Ed25519 signing key: it signs the evidence report and the escalation packets.

The key is held like the other keys (a setting, a file, a Kubernetes Secret); only the embedded
set-up makes one, once, under the state directory. Its public key is what a third party needs to
check what keyrevoke signed.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keyrevoke.crypto import load_kek
from keyrevoke.settings import Settings

SIGNING_KEY_ENV = "KEYREVOKE_SIGNING_KEY"


def load_signing_key(settings: Settings, *, create: bool | None = None) -> Ed25519PrivateKey:
    """The deployment's signing key: ``KEYREVOKE_SIGNING_KEY`` (32 bytes, urlsafe base64), else its file.

    ``create`` defaults to the embedded set-up's rule: a missing file is made only when no file was
    named (``<state_dir>/signing.key``) and ``KEYREVOKE_EMBEDDED`` is true; otherwise a missing key is
    an error.
    """
    if create is None:
        create = settings.embedded and settings.signing_key_file is None
    secret = settings.signing_key.get_secret_value() if settings.signing_key else None
    seed = load_kek(
        secret,
        settings.resolved_signing_key_file(),
        create=create,
        env_name=SIGNING_KEY_ENV,
        what="signing key",
    )
    return Ed25519PrivateKey.from_private_bytes(seed.material)


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The public key as one line of base64 of its 32 raw bytes (what ``--public-key`` reads).

    Standard base64, not urlsafe: a urlsafe text may begin with ``-`` (one key in 64), and a command
    line would take ``--public-key -C1y...`` for two options. Either alphabet is read back.
    """
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str, where: str) -> Ed25519PublicKey:
    """Reads what :func:`public_key_text` wrote; raises ``ValueError`` naming ``where`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise ValueError(f"{where}: not an Ed25519 public key (base64 of 32 bytes)") from error
