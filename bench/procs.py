"""The processes a benchmark run starts, and what it reads from them (/proc: RSS, CPU time).

Each run gets its own folder, sample inventory, ledger, simulator process, dev server and worker
process, so that no run inherits another's state; what the benchmark times starts after all of them
are up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def keyrevoke_cli() -> list[str]:
    """The ``keyrevoke`` command (its entry point, ``commander.main``) as this Python runs it: the code of
    this checkout, whatever the installed console script points at."""
    return [sys.executable, "-m", "commander.main"]


#: the checkout the benchmark measures
ROOT = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    """This process's environment without any KEYREVOKE_ variable (each run sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def settings_env(values: dict[str, Any]) -> dict[str, str]:
    """``KEYREVOKE_*`` variables for settings given by field name."""
    env = clean_env()
    for name, value in values.items():
        if value is None:
            continue
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        env["KEYREVOKE_" + name.upper()] = text
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid: int, name: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in KiB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_named(name: str) -> list[int]:
    """Pids of this process's direct children whose command name is ``name``."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and comm == name:
            found.append(int(entry.name))
    return found


async def end_process(process: subprocess.Popen[bytes], signum: int, within: float = 60.0) -> None:
    """Send ``signum``, wait up to ``within`` seconds for the process to exit, and SIGKILL it if it has not."""
    process.send_signal(signum)
    try:
        await asyncio.to_thread(process.wait, within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class SimProcess:
    """``python -m bench.simproc``: the venue simulator in its own process."""

    def __init__(self, inventory: Path, masters: Path, scenario: Path | None, log: Path) -> None:
        self.args = [sys.executable, "-m", "bench.simproc", str(inventory), str(masters), str(scenario or "")]
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.venue_urls: dict[str, str] = {}
        self.stats_url = ""

    async def start(self) -> None:
        with self.log.open("ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.args, stdout=subprocess.PIPE, stderr=err, env=clean_env(), start_new_session=True
            )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 300)
        if not line:
            raise RuntimeError(f"the simulator process did not start; see {self.log}")
        started = json.loads(line)
        self.venue_urls, self.stats_url = started["venue_urls"], started["stats_url"]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(self.stats_url) as answer:
            body: dict[str, Any] = await answer.json()
            return body

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class WorkerProcess:
    """A worker as its own process (``keyrevoke worker`` or the per-key baseline's)."""

    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def died(self) -> str:
        """Return (with the tail of its log) once the process has exited by itself."""
        while True:
            process = self.process
            if process is not None and process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
                return f"the worker exited with code {process.returncode}:\n{tail}"
            await asyncio.sleep(1.0)

    def cpu(self) -> float:
        """CPU seconds of this worker so far."""
        return cpu_seconds(self.pid) if self.process is not None else 0.0

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            await end_process(self.process, signal.SIGTERM)
        self.process = None


async def wait_for_pollers(client: Client, queues: list[tuple[str, bool]], within: float = 120.0) -> None:
    """Wait until each task queue has a poller: (name, True) for workflow queues, False for activity ones."""
    deadline = time.monotonic() + within
    for name, is_workflow in queues:
        kind = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW if is_workflow else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        while True:
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind
                )
            )
            if answer.pollers:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker polls task queue {name} after {within:.0f} s")
            await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Measured:
    """A command run to its end: exit code, wall time, its own peak RSS, what it printed."""

    returncode: int
    seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str


async def run_measured(command: list[str], env: dict[str, str], folder: Path) -> Measured:
    """Run ``command`` through ``bench.peak``, which reports the child's own peak RSS (see there)."""
    out, err, peak = folder / "out.txt", folder / "err.txt", folder / "peak.json"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.peak", str(peak), *command, stdout=stdout, stderr=stderr, env=env
        )
        await process.wait()
    figures = json.loads(peak.read_text())
    return Measured(
        figures["returncode"],
        figures["seconds"],
        figures["peak_rss_kib"] / 1024,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
    )
