"""The far ends of keyrevoke's outreach, for tests: an exchange security team's OpenPGP key, an SMTP server.

The security team decrypts with ``gpg`` and its own secret key, called directly (not through the
python-gnupg wrapper keyrevoke encrypts with). The SMTP server is aiosmtpd on loopback: it receives
each message as sent on the wire.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from commander.devserver import free_port


@dataclass
class SecurityTeam:
    """An exchange's security team: an address and an OpenPGP key pair (Curve25519) in its own GnuPG home."""

    home: Path
    address: str
    public_key_file: Path

    @classmethod
    def create(cls, folder: Path, address: str) -> SecurityTeam:
        # A short home path: gpg-agent's socket name must fit.
        home = Path(tempfile.mkdtemp(prefix="kr-team-"))
        home.chmod(0o700)
        _gpg(
            home,
            "--passphrase",
            "",
            "--quick-gen-key",
            f"Security Team <{address}>",
            "future-default",
            "default",
            "never",
        )
        folder.mkdir(parents=True, exist_ok=True)
        public_key_file = folder / f"{address.split('@')[1]}.asc"
        public_key_file.write_bytes(_gpg(home, "--armor", "--export", address))
        return cls(home, address, public_key_file)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return _gpg(self.home, "--decrypt", stdin=ciphertext)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"], check=False, capture_output=True)


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"gpg {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def write_contacts(path: Path, contacts: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps(contacts))
    return path


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def attachment(self, suffix: str) -> bytes:
        for part in self.message.iter_attachments():
            if (part.get_filename() or "").endswith(suffix):
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload
        raise AssertionError(f"no attachment ending in {suffix}")

    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


@dataclass
class SmtpSink:
    """An SMTP server on loopback keeping every message it accepts."""

    port: int = field(default_factory=free_port)
    options: dict[str, Any] = field(default_factory=dict)  # aiosmtpd's: TLS contexts, authenticator, ...
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.recipients]
