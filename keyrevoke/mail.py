"""Sending mail through the platform's SMTP server (``KEYREVOKE_SMTP_URL``), by aiosmtplib.

``smtp://host:port`` speaks plain SMTP and upgrades with STARTTLS when the server offers it;
``smtp+starttls://`` requires STARTTLS; ``smtps://`` is TLS from the first byte (port 465 by default).
A user name (and password) in the URL, or ``KEYREVOKE_SMTP_PASSWORD``, logs in with AUTH.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from keyrevoke.errors import ConfigurationError, KeyrevokeError
from keyrevoke.settings import Settings

_SCHEMES = {"smtp": (25, False, None), "smtp+starttls": (587, False, True), "smtps": (465, True, False)}


class MailError(KeyrevokeError):
    """The SMTP server did not take a message (after retries)."""


@dataclass(frozen=True, repr=False)
class SmtpServer:
    """Where and how to send: parsed from the URL once, at start-up."""

    host: str
    port: int
    use_tls: bool
    start_tls: bool | None  # None: when the server offers it
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"SmtpServer({self.host}:{self.port})"


def parse_smtp_url(url: str, password: str = "", ca_file: Path | None = None, timeout: float = 30.0) -> SmtpServer:
    """The server named by ``url``; a bad URL is a ``ConfigurationError`` naming KEYREVOKE_SMTP_URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"KEYREVOKE_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://, got {scheme or url!r}://"
        )
    default_port, use_tls, start_tls = _SCHEMES[scheme]
    if not parts.hostname:
        raise ConfigurationError("KEYREVOKE_SMTP_URL names no host")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigurationError("KEYREVOKE_SMTP_URL: the port is not a number") from None
    return SmtpServer(
        host=parts.hostname,
        port=port,
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username or ""),
        password=password or unquote(parts.password or ""),
        ca_file=ca_file,
        timeout=timeout,
    )


class Mailer:
    """Sends one message at a time, retrying connection and temporary (4xx) failures."""

    def __init__(self, server: SmtpServer, sender: str, attempts: int = 4) -> None:
        self.server = server
        self.sender = sender
        self._attempts = attempts

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` (its ``From`` is set to the sender if missing); raises ``MailError``."""
        if "From" not in message:
            message["From"] = self.sender
        server = self.server
        context = ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                retry=retry_if_exception_type(_TemporaryMailError),
                wait=wait_exponential_jitter(multiplier=0.5, max=10.0, jitter=0.5),
                reraise=True,
            ):
                with attempt:
                    await self._send_once(message, context)
        except _TemporaryMailError as error:
            raise MailError(str(error)) from None

    async def _send_once(self, message: EmailMessage, context: ssl.SSLContext) -> None:
        server = self.server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                use_tls=server.use_tls,
                start_tls=server.start_tls,
                tls_context=context if server.use_tls or server.start_tls is not False else None,
                username=server.username or None,
                password=(server.password or None) if server.username else None,
                timeout=server.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = ", ".join(f"{r.recipient} ({r.code})" for r in error.recipients)
            raise MailError(f"SMTP server {server.host}:{server.port} refused the recipient(s): {refused}") from None
        except aiosmtplib.SMTPResponseException as error:
            # 4xx is "try again later"; 5xx is a refusal no retry fixes.
            text = f"SMTP server {server.host}:{server.port} answered {error.code}: {error.message}"
            if 400 <= error.code < 500:
                raise _TemporaryMailError(text) from None
            raise MailError(text) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise _TemporaryMailError(
                f"SMTP server {server.host}:{server.port} unreachable ({type(error).__name__}: {error})"
            ) from None


class _TemporaryMailError(MailError):
    pass


def mailer_from_settings(settings: Settings) -> Mailer | None:
    """The mailer for ``KEYREVOKE_SMTP_URL``; None when no URL is set (no mail is sent)."""
    if not settings.smtp_url:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    server = parse_smtp_url(settings.smtp_url, password, settings.smtp_ca_file, settings.smtp_timeout_seconds)
    return Mailer(server, settings.smtp_from)
