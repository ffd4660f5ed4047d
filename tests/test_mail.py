"""Mail through the platform's SMTP server: STARTTLS, TLS from the start, AUTH, and clear errors.

Each test runs an aiosmtpd server on loopback with a certificate made here; the client trusts it
through ``KEYREVOKE_SMTP_CA_FILE`` and logs in with the user in the URL and the password setting.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyrevoke.contacts import load_contacts
from keyrevoke.errors import ConfigurationError
from keyrevoke.mail import MailError, mailer_from_settings, parse_smtp_url
from keyrevoke.settings import Settings
from tests.outreach import SmtpSink

PASSWORD = "smtp-password-7f3a"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class Logins:
    """aiosmtpd's authenticator: accepts alice with the password, records every attempt."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        ok = data.login == b"alice" and data.password == PASSWORD.encode()
        self.seen.append((data.login.decode(), session.ssl is not None))
        return AuthResult(success=ok, handled=False)


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def logins() -> Logins:
    return Logins()


def _sink(**options: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink(options=options)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def starttls_sink(certificate: tuple[Path, Path], logins: Logins) -> Iterator[SmtpSink]:
    yield from _sink(
        tls_context=_server_context(certificate), require_starttls=True, authenticator=logins, auth_require_tls=True
    )


@pytest.fixture
def tls_sink(certificate: tuple[Path, Path], logins: Logins) -> Iterator[SmtpSink]:
    # aiosmtpd counts only STARTTLS as TLS for AUTH; here the whole connection is TLS (the next test shows it).
    yield from _sink(ssl_context=_server_context(certificate), authenticator=logins, auth_require_tls=False)


def _message() -> EmailMessage:
    message = EmailMessage()
    message["To"] = "security@exchange.test"
    message["Subject"] = "revocation request"
    message.set_content("please revoke")
    return message


def _settings(tmp_path: Path, url: str, certificate: tuple[Path, Path], password: str = PASSWORD) -> Settings:
    return Settings(
        state_dir=tmp_path, smtp_url=url, smtp_password=password, smtp_ca_file=certificate[0], smtp_from="ir@p.test"
    )


async def test_starttls_with_login(
    tmp_path: Path, certificate: tuple[Path, Path], starttls_sink: SmtpSink, logins: Logins
) -> None:
    url = f"smtp+starttls://alice@127.0.0.1:{starttls_sink.port}"
    mailer = mailer_from_settings(_settings(tmp_path, url, certificate))
    assert mailer is not None
    await mailer.send(_message())
    assert [r.recipients for r in starttls_sink.received] == [["security@exchange.test"]]
    assert starttls_sink.received[0].sender == "ir@p.test"
    assert logins.seen == [("alice", True)]  # logged in after the upgrade to TLS


async def test_tls_from_the_start_with_login(
    tmp_path: Path, certificate: tuple[Path, Path], tls_sink: SmtpSink, logins: Logins
) -> None:
    url = f"smtps://alice@127.0.0.1:{tls_sink.port}"
    mailer = mailer_from_settings(_settings(tmp_path, url, certificate))
    assert mailer is not None
    await mailer.send(_message())
    assert len(tls_sink.received) == 1
    assert [login for login, _ in logins.seen] == ["alice"]


async def test_a_wrong_password_is_a_clear_error_without_the_password(
    tmp_path: Path, certificate: tuple[Path, Path], starttls_sink: SmtpSink
) -> None:
    url = f"smtp+starttls://alice@127.0.0.1:{starttls_sink.port}"
    mailer = mailer_from_settings(_settings(tmp_path, url, certificate, password="wrong-password"))
    assert mailer is not None
    with pytest.raises(MailError) as raised:
        await mailer.send(_message())
    assert f"127.0.0.1:{starttls_sink.port} answered 535" in str(raised.value)
    assert "wrong-password" not in str(raised.value)
    assert starttls_sink.received == []


async def test_an_untrusted_certificate_is_refused(tmp_path: Path, tls_sink: SmtpSink) -> None:
    mailer = mailer_from_settings(Settings(state_dir=tmp_path, smtp_url=f"smtps://127.0.0.1:{tls_sink.port}"))
    assert mailer is not None
    mailer._attempts = 1
    with pytest.raises(MailError, match="unreachable"):
        await mailer.send(_message())
    assert tls_sink.received == []


def test_bad_smtp_urls_say_what_is_wrong() -> None:
    with pytest.raises(ConfigurationError, match=r"KEYREVOKE_SMTP_URL must start with smtp://"):
        parse_smtp_url("http://mail.example")
    with pytest.raises(ConfigurationError, match="names no host"):
        parse_smtp_url("smtp://")
    with pytest.raises(ConfigurationError, match="port is not a number"):
        parse_smtp_url("smtp://mail.example:twenty-five")
    server = parse_smtp_url("smtps://ops%40platform@mail.example", password="")
    assert (server.host, server.port, server.use_tls, server.username) == ("mail.example", 465, True, "ops@platform")
    assert "ops" not in repr(parse_smtp_url("smtp://ops:pw@mail.example"))


def test_contacts_file_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    assert load_contacts(path) == {}
    path.write_text('{"binance": {"address": "security@binance.test",\n "public_key_file": 7}}')
    with pytest.raises(ConfigurationError, match=r"contacts.json: binance.public_key_file: expected a file path"):
        load_contacts(path)
    path.write_text('{"binance": {"address": "not an address"}}')
    with pytest.raises(ConfigurationError, match=r"binance.address: not a mail address"):
        load_contacts(path)
    path.write_text('{"binance": {"adress": "security@binance.test"}}')
    with pytest.raises(ConfigurationError, match=r"binance: unknown field\(s\) adress"):
        load_contacts(path)
    path.write_text('{"binance": \n{')
    with pytest.raises(ConfigurationError, match=r"contacts.json:2: not JSON"):
        load_contacts(path)
    path.write_text('{"Binance": {"address": "security@binance.test", "public_key_file": "keys/b.asc"}}')
    contact = load_contacts(path)["binance"]
    assert contact.public_key_file == tmp_path / "keys" / "b.asc"
