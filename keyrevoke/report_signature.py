"""The evidence report's detached signature, ``report.json.sig``: what is signed, and how to check it.

The signed text is a few lines of ASCII: the format, the incident id (a JSON string), and the SHA-256
of each file of the report::

    keyrevoke-report/2
    incident "inc-20261125-120000-000"
    report.json sha256 <64 hex digits>
    report.csv sha256 <64 hex digits>
    report.html sha256 <64 hex digits>

``report.json.sig`` is a JSON object: ``signed`` (that text), ``signature`` (the Ed25519 signature of
its UTF-8 bytes, urlsafe base64) and ``public_key`` (the signer's, for information only: a checker
uses the public key it trusts, never this one). ``report.json`` holds every field of the report, so
the signature covers them all; hashing the files lets a report of any size be signed in constant
memory, and lets anyone check it with ``hashlib`` and ``cryptography`` alone (see the README).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keyrevoke.errors import InputError
from keyrevoke.signing import public_key_text

REPORT_FORMAT = "keyrevoke-report/2"
SIGNATURE_FORMAT = "keyrevoke-signature/1"
SIGNATURE_SUFFIX = ".sig"
MAX_SIGNATURE_BYTES = 64 * 1024

_FILE_LINE = re.compile(r"(report\.(?:json|csv|html)) sha256 ([0-9a-f]{64})")


class ReportDoesNotHold(InputError):
    """A report fails a check; the message names the first thing that does not hold."""


@dataclass(frozen=True)
class SignedStatement:
    """What a signature vouches for: the incident and each file's SHA-256."""

    incident_id: str
    digests: dict[str, str]  # file name -> sha256 hex

    def text(self) -> str:
        lines = [REPORT_FORMAT, f"incident {json.dumps(self.incident_id)}"]
        lines += [f"{name} sha256 {digest}" for name, digest in self.digests.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, where: str) -> SignedStatement:
        lines = text.splitlines()
        if len(lines) < 3 or lines[0] != REPORT_FORMAT or not lines[1].startswith("incident "):
            raise ReportDoesNotHold(f"{where}: the signed text is not a {REPORT_FORMAT} statement")
        try:
            incident_id = json.loads(lines[1].removeprefix("incident "))
        except json.JSONDecodeError:
            incident_id = None
        if not isinstance(incident_id, str):
            raise ReportDoesNotHold(f"{where}: the signed text's incident line is not a JSON string")
        digests = {}
        for number, line in enumerate(lines[2:], start=3):
            match = _FILE_LINE.fullmatch(line)
            if match is None:
                raise ReportDoesNotHold(f"{where}: signed line {number} is not 'report.<ext> sha256 <hex>'")
            digests[match.group(1)] = match.group(2)
        if "report.json" not in digests:
            raise ReportDoesNotHold(f"{where}: the signed text lists no report.json")
        return cls(incident_id, digests)


def signature_document(statement: SignedStatement, key: Ed25519PrivateKey) -> str:
    """The content of ``report.json.sig`` for ``statement``, signed with ``key``."""
    text = statement.text()
    signature = base64.urlsafe_b64encode(key.sign(text.encode())).decode()
    document = {
        "format": SIGNATURE_FORMAT,
        "signed": text,
        "signature": signature,
        "public_key": public_key_text(key.public_key()),
    }
    return json.dumps(document, indent=2) + "\n"


def read_signature(path: Path, public_key: Ed25519PublicKey) -> SignedStatement:
    """The statement in ``path`` if its signature verifies with ``public_key``; else ReportDoesNotHold."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SIGNATURE_BYTES + 1)
    except FileNotFoundError:
        raise ReportDoesNotHold(
            f"{path}: no signature file (the report is unsigned, or give --signature; "
            "--no-signature checks the rest without it)"
        ) from None
    except OSError as error:
        raise ReportDoesNotHold(f"{path}: cannot read the signature ({error.strerror or error})") from None
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise ReportDoesNotHold(f"{path}: longer than a signature file can be ({MAX_SIGNATURE_BYTES} bytes)")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ReportDoesNotHold(f"{path}: not a signature file (not JSON)") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(f), str) for f in ("signed", "signature")):
        raise ReportDoesNotHold(f"{path}: not a signature file (needs the strings 'signed' and 'signature')")
    try:
        signature = base64.urlsafe_b64decode(document["signature"].encode())
        public_key.verify(signature, document["signed"].encode())
    except (ValueError, InvalidSignature):
        raise ReportDoesNotHold(
            f"{path}: the signature does not verify with the given public key "
            "(the report was changed after it was signed, or another key signed it)"
        ) from None
    return SignedStatement.parse(document["signed"], str(path))
