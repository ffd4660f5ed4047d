"""Connecting to Temporal the way the settings say."""

from __future__ import annotations

from temporalio.client import Client

from keyrevoke.settings import Settings


async def connect(settings: Settings) -> Client:
    """A client for the configured Temporal frontend and namespace."""
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
