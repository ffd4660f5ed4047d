"""Connecting to Temporal the way the settings say: the one place clients are made.

Every client encrypts its payloads with the payload codec; TLS (and mTLS) comes from the
``KEYREVOKE_TEMPORAL_TLS_*`` files, and an API key for Temporal Cloud always travels over TLS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypedDict

import temporalio.converter
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from keyrevoke.errors import ConfigurationError
from keyrevoke.payload_codec import payload_codec_from_settings
from keyrevoke.settings import Settings


class ConnectOptions(TypedDict):
    """The keyword arguments for ``Client.connect`` that come from the connection settings."""

    target_host: str
    namespace: str
    api_key: str | None
    tls: bool | TLSConfig


def _variable(field: str) -> str:
    return "KEYREVOKE_" + field.upper()


def _read_pem(settings: Settings, field: str) -> bytes | None:
    path: Path | None = getattr(settings, field)
    if path is None:
        return None
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"{_variable(field)}: cannot read {path} ({type(error).__name__})") from None
    # Checked here because the connection would only fail later, with a message that names no setting.
    if b"-----BEGIN " not in content:
        raise ConfigurationError(f"{_variable(field)}: {path} is not a PEM file")
    return content


def tls_config(settings: Settings) -> TLSConfig | None:
    """The TLS configuration the settings ask for, or ``None`` for plaintext.

    Any TLS file or a server name turns TLS on, as ``KEYREVOKE_TEMPORAL_TLS`` does: setting one and
    silently connecting in the clear would be worse than either. A client certificate needs its key.
    """
    wanted = (
        settings.temporal_tls
        or bool(settings.temporal_tls_server_name)
        or any(
            getattr(settings, field) is not None
            for field in ("temporal_tls_ca_file", "temporal_tls_cert_file", "temporal_tls_key_file")
        )
    )
    if not wanted:
        return None
    has_cert = settings.temporal_tls_cert_file is not None
    has_key = settings.temporal_tls_key_file is not None
    if has_cert != has_key:
        given, missing = ("cert_file", "key_file") if has_cert else ("key_file", "cert_file")
        raise ConfigurationError(
            f"{_variable('temporal_tls_' + given)} is set but {_variable('temporal_tls_' + missing)} is not: "
            "mTLS needs both the client certificate and its private key"
        )
    return TLSConfig(
        server_root_ca_cert=_read_pem(settings, "temporal_tls_ca_file"),
        client_cert=_read_pem(settings, "temporal_tls_cert_file"),
        client_private_key=_read_pem(settings, "temporal_tls_key_file"),
        domain=settings.temporal_tls_server_name or None,
    )


def connection_options(settings: Settings) -> ConnectOptions:
    """Address, namespace, API key and TLS for ``Client.connect``, checked; raises ``ConfigurationError``.

    An API key is a bearer token: it implies TLS (the configured files if any, else the system's roots).
    """
    tls = tls_config(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return ConnectOptions(
        target_host=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key or None,
        tls=tls if tls is not None else bool(api_key),
    )


def data_converter(settings: Settings, create: bool = True) -> temporalio.converter.DataConverter:
    """The default converter with the payload codec; ``create`` as in ``payload_codec_from_settings``."""
    return dataclasses.replace(
        temporalio.converter.default(), payload_codec=payload_codec_from_settings(settings, create)
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for the configured Temporal frontend and namespace, encrypting every payload.

    ``runtime``: the Temporal runtime to connect on (a worker's, which reports the SDK's metrics); the
    SDK's default one if not given.
    """
    options = connection_options(settings)
    # Imported on use: it loads the OpenTelemetry SDK, which only processes that connect need.
    from keyrevoke.observability.tracing import tracing_interceptors

    # With an OTLP endpoint, the trace starts here and workers inherit the interceptors from the client.
    return await Client.connect(
        **options,
        data_converter=data_converter(settings),
        interceptors=tracing_interceptors(settings),
        runtime=runtime,
    )
