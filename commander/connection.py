"""Reaching Temporal and the ledger from a command: one line naming the address and the fix when they do not answer."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from keyrevoke.errors import ServiceUnreachable
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.settings import Settings
from keyrevoke.temporal_client import connect


def temporal_unreachable(settings: Settings) -> ServiceUnreachable:
    return ServiceUnreachable(
        f"cannot reach Temporal at {settings.temporal_address}: start it with `keyrevoke dev-server` "
        "or set KEYREVOKE_TEMPORAL_ADDRESS"
    )


async def connect_temporal(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for the configured Temporal; ``ServiceUnreachable`` when it does not answer."""
    try:
        return await connect(settings, runtime)
    except RuntimeError as error:
        # The SDK reports every failed connect (refused, DNS, TLS handshake) as this RuntimeError.
        if "connect" not in str(error).lower():
            raise
        raise temporal_unreachable(settings) from None


def open_ledger(settings: Settings) -> Ledger:
    """The configured ledger; ``ServiceUnreachable`` when its database does not answer."""
    return ledger_from_settings(settings)
