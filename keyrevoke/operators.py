"""Operators are keys, not names: registered OpenSSH Ed25519 keys that sign every control action.

The registry is an ``ssh-keygen`` allowed_signers file (``name ssh-ed25519 AAAA...`` per line), so an
engineer registers the key they already have. An action (start, approve, cancel, narrow, pause,
resume, confirm) is a short JSON message naming the incident, the action, the venue, the reason, a
digest of the keys it lists, the time and a nonce; it is signed as SSHSIG in the ``keyrevoke``
namespace, by the CLI with a key file or by ``ssh-keygen -Y sign -n keyrevoke -f KEY MESSAGE``.

Verification (:func:`verify_action`) checks the signature against the registry, that the message
is the request it comes with, and that it is fresh; the incident workflow adds what only it knows
(not seen before, the approver is not the starter). Names are shown; the key's fingerprint decides.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import secrets
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sshsig
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sshsig.allowed_signers import AllowedSigner

from keyrevoke.errors import ConfigurationError, InputError
from keyrevoke.models import Operator, SignedAction, VerifyActionRequest, keys_digest
from keyrevoke.private_files import private_dir
from keyrevoke.settings import Settings

#: The SSHSIG namespace of keyrevoke's signatures (``ssh-keygen -Y sign -n keyrevoke``).
NAMESPACE = "keyrevoke"
#: What a message says it is, so that no other signed JSON passes for an action.
MESSAGE_KIND = "keyrevoke-control-action/1"
ACTIONS = ("start", "approve", "cancel", "narrow", "pause", "resume", "confirm", "close")
ED25519 = "ssh-ed25519"
# A clock a little ahead of the verifier's is not an attack; a message from further ahead is refused.
CLOCK_SKEW = timedelta(seconds=60)


class ActionRefused(InputError):
    """A signed action that must not be acted on; the message is the one line the commander sees."""


@dataclass(frozen=True)
class RegisteredOperator:
    name: str
    fingerprint: str
    key: sshsig.PublicKey
    line: int


# --- the registry ----------------------------------------------------------------------------------


def load_operators(path: Path) -> list[RegisteredOperator]:
    """The registered operators of an allowed_signers file; a bad line is an error naming file:line.

    Lines whose ``namespaces=`` option leaves out ``keyrevoke`` are for other uses and are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such operators file (KEYREVOKE_OPERATORS_FILE)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path}: cannot read the operators file ({type(error).__name__})") from None
    operators: list[RegisteredOperator] = []
    by_fingerprint: dict[str, RegisteredOperator] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            signer = AllowedSigner.parse(line)
        except ValueError:
            raise ConfigurationError(f"{where}: not an allowed_signers line ('name ssh-ed25519 AAAA...')") from None
        options = signer.options or {}
        if "cert-authority" in options or "valid-after" in options or "valid-before" in options:
            raise ConfigurationError(f"{where}: cert-authority, valid-after and valid-before are not supported")
        namespaces = options.get("namespaces")
        if namespaces is not None and NAMESPACE not in namespaces.split(","):
            continue
        if signer.key_type != ED25519:
            raise ConfigurationError(f"{where}: only {ED25519} keys can be operators, not {signer.key_type}")
        try:
            key = sshsig.PublicKey.from_openssh_str(f"{signer.key_type} {signer.base64_key}")
        except (ValueError, NotImplementedError):
            raise ConfigurationError(f"{where}: the public key does not decode") from None
        name = signer.principals.split(",")[0].strip()
        if not name:
            raise ConfigurationError(f"{where}: the operator has no name")
        if not name.isprintable():
            # The name is shown in the event log, the report and on terminals.
            raise ConfigurationError(f"{where}: the operator's name holds control characters")
        operator = RegisteredOperator(name, key.sha256_str(), key, number)
        first = by_fingerprint.get(operator.fingerprint)
        if first is not None:
            raise ConfigurationError(
                f"{where}: key {operator.fingerprint} is already registered on line {first.line} ({first.name})"
            )
        by_fingerprint[operator.fingerprint] = operator
        operators.append(operator)
    if not operators:
        raise ConfigurationError(f"{path}: registers no operator key")
    return operators


def operators_for(settings: Settings) -> list[RegisteredOperator]:
    """The deployment's operators; the embedded set-up (no operators file set) makes its own once.

    Outside the embedded set-up (``KEYREVOKE_EMBEDDED=false``) the operators file must be given: a
    process that registered a key of its own would refuse every operator the others accept.
    """
    if settings.operators_file is None:
        _require_embedded(settings)
        ensure_embedded_operator(settings)
    return load_operators(settings.resolved_operators_file())


def _require_embedded(settings: Settings) -> None:
    if not settings.embedded:
        raise ConfigurationError(
            "no operators file: set KEYREVOKE_OPERATORS_FILE (an ssh-keygen allowed_signers file of the "
            "operators' public keys); outside the embedded set-up no operator key is ever made"
        )


def ensure_embedded_operator(settings: Settings) -> None:
    """The embedded set-up's one operator: a key under the state directory, registered in its own file.

    Processes of the embedded set-up may start together: each file is written privately and linked
    into place, so it appears whole or not at all and the first one made wins.
    """
    key_file = settings.state_dir / "operator.key"
    if not key_file.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        _write_once(key_file, pem)
    operators = settings.state_dir / "operators"
    if not operators.exists():
        key = _read_private_key(key_file)
        name = settings.operator or _os_user()
        line = f"{_principal(name)} {_public_line(key)}\n"
        header = "# keyrevoke operators (ssh-keygen allowed_signers): one line per operator key\n"
        _write_once(operators, (header + line).encode())


def _principal(name: str) -> str:
    cleaned = "".join(ch for ch in name if ch.isprintable() and not ch.isspace() and ch not in ',"#')
    return cleaned or "operator"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _write_once(path: Path, data: bytes) -> None:
    # The state directory may not exist yet: made here, it is private like every folder keyrevoke makes.
    private_dir(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


def _public_line(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: no such operator key (set KEYREVOKE_OPERATOR_KEY_FILE, or sign with "
            "`ssh-keygen -Y sign -n keyrevoke` and pass --signature)"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read the operator key ({type(error).__name__})") from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except TypeError:
        raise ConfigurationError(
            f"{path}: the operator key is passphrase-protected: sign with "
            "`ssh-keygen -Y sign -n keyrevoke -f KEY MESSAGE` and pass --signature"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigurationError(f"{path}: not an OpenSSH private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path}: the operator key must be an Ed25519 key (ssh-keygen -t ed25519)")
    return key


def operator_key(settings: Settings) -> Ed25519PrivateKey:
    """The key this CLI signs with: the setting's file, or the embedded set-up's own key."""
    if settings.operator_key_file is None and settings.operators_file is None:
        _require_embedded(settings)
        ensure_embedded_operator(settings)
    return _read_private_key(settings.resolved_operator_key_file())


# --- messages --------------------------------------------------------------------------------------


def action_message(
    incident_id: str,
    action: str,
    venue: str = "",
    reason: str = "",
    key_ids: Sequence[str] = (),
    at: datetime | None = None,
) -> str:
    """The text an operator signs for one action (JSON, one line, ends with a newline)."""
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    body = {
        "kind": MESSAGE_KIND,
        "incident": incident_id,
        "action": action,
        "venue": venue,
        "reason": reason,
        "keys": len(set(key_ids)),
        "keys_sha256": keys_digest(key_ids),
        "at": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nonce": secrets.token_hex(12),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def parse_message(message: str) -> dict[str, object]:
    """The fields of a signed message; ``ActionRefused`` if it is not one of keyrevoke's."""
    try:
        body = json.loads(message)
    except ValueError:
        raise ActionRefused("the signed message is not a keyrevoke action (not JSON)") from None
    if not isinstance(body, dict) or body.get("kind") != MESSAGE_KIND:
        raise ActionRefused(f"the signed message is not a keyrevoke action (kind is not {MESSAGE_KIND})")
    return body


# --- SSHSIG ----------------------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def sign_message(key: Ed25519PrivateKey, message: str) -> str:
    """The armored SSHSIG signature of ``message``, as ``ssh-keygen -Y sign -n keyrevoke`` writes it.

    The format is OpenSSH's PROTOCOL.sshsig: sign ``"SSHSIG" | namespace | reserved | "sha512" |
    SHA-512(message)``, wrap the signature with the public key and armor it.
    """
    digest = hashlib.sha512(message.encode()).digest()
    namespace = NAMESPACE.encode()
    signed = b"SSHSIG" + _string(namespace) + _string(b"") + _string(b"sha512") + _string(digest)
    signature = _string(ED25519.encode()) + _string(key.sign(signed))
    public_blob = base64.b64decode(_public_line(key).split()[1])
    blob = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + _string(public_blob)
        + _string(namespace)
        + _string(b"")
        + _string(b"sha512")
        + _string(signature)
    )
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"


def sign_action(
    settings: Settings,
    incident_id: str,
    action: str,
    venue: str = "",
    reason: str = "",
    key_ids: Sequence[str] = (),
) -> SignedAction:
    """Sign one action now with the CLI's operator key (``operator_key_file``, or the embedded key)."""
    message = action_message(incident_id, action, venue, reason, key_ids)
    return SignedAction(message, sign_message(operator_key(settings), message))


def verify_action(
    operators: Sequence[RegisteredOperator],
    request: VerifyActionRequest,
    max_age: timedelta,
    now: datetime | None = None,
) -> Operator:
    """The registered operator who signed this request; ``ActionRefused`` with one line otherwise.

    Checks, in order: a signature is there, it verifies in the keyrevoke namespace, its key is
    registered, the message is this very request (incident, action, venue, reason, keys), and it is
    no older than ``max_age`` (nor dated ahead of the clock by more than a minute).
    """
    signed = request.signed
    if signed is None:
        raise ActionRefused(f"{request.action} is not signed: every control action needs an operator's signature")
    try:
        key = sshsig.check_signature(signed.message.encode(), signed.signature, namespace=NAMESPACE)
    except (sshsig.InvalidSignature, NotImplementedError, ValueError):
        raise ActionRefused(
            f"the signature of {request.action} does not verify (message, signature and namespace "
            f"{NAMESPACE!r} must match)"
        ) from None
    signer = next((op for op in operators if op.key == key), None)
    if signer is None:
        raise ActionRefused(f"key {key.sha256_str()} is not a registered operator")
    body = parse_message(signed.message)
    expected: dict[str, object] = {
        "incident": request.incident_id,
        "action": request.action,
        "venue": request.venue,
        "reason": request.reason,
        "keys": request.keys,
        "keys_sha256": request.keys_sha256,
    }
    for field, value in expected.items():
        if body.get(field) != value:
            raise ActionRefused(
                f"the signed message is for {field} {body.get(field)!r}, not {value!r}: sign this very action"
            )
    try:
        at = datetime.strptime(str(body.get("at")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ActionRefused("the signed message has no valid time ('at', UTC, like 2026-01-31T12:00:00Z)") from None
    now = now or datetime.now(UTC)
    if at > now + CLOCK_SKEW:
        raise ActionRefused(f"the signed message is dated {body['at']}, ahead of the clock: check the signer's clock")
    if now - at > max_age:
        raise ActionRefused(
            f"the signature is stale: signed at {body['at']}, more than {int(max_age.total_seconds())} s ago; "
            "sign the action again"
        )
    return Operator(signer.name, signer.fingerprint)


def read_signed_action(signature_file: Path, message_file: Path | None = None) -> SignedAction:
    """An action signed outside keyrevoke: ``ssh-keygen -Y sign`` wrote ``MESSAGE.sig`` next to ``MESSAGE``."""
    if message_file is None:
        if signature_file.suffix != ".sig":
            raise InputError(f"{signature_file}: name the signed message with --message (or end this name in .sig)")
        message_file = signature_file.with_suffix("")
    texts = []
    for path, what in ((message_file, "signed message"), (signature_file, "signature")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such {what} file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read the {what} ({type(error).__name__})") from None
    return SignedAction(texts[0], texts[1])
