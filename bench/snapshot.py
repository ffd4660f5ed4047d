"""Run the benchmark from a snapshot of the source tree, so every run of a suite measures the same code.

The repository is edited while a long suite runs; without a snapshot, each process the suite starts
(a worker, the simulator, the baseline script) would import whatever the files hold at that moment,
half-finished edits included. ``python -m bench run`` copies the packages once, checks that they
import, and re-executes itself from the copy; results and the document still go to the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("activities", "bench", "commander", "keyrevoke", "venuesim", "workers", "workflows")
IMPORT_CHECK = "import workers.runner, commander.main, bench.runs, bench.perkey, bench.whatif, venuesim"


def source_digest(root: Path) -> str:
    """A short digest of every Python file of the packages: which code exactly was measured."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def revision(root: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return commit.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def take(root: Path, attempts: int = 10, pause: float = 30.0) -> Path:
    """Copy the packages to a new folder; retry while the copy does not import (an edit in progress)."""
    for attempt in range(attempts):
        folder = Path(tempfile.mkdtemp(prefix="keyrevoke-bench-src-"))
        for package in PACKAGES:
            shutil.copytree(root / package, folder / package, ignore=shutil.ignore_patterns("__pycache__", "results"))
        env = {**os.environ, "PYTHONPATH": str(folder)}
        check = subprocess.run(
            [sys.executable, "-c", IMPORT_CHECK], cwd=folder, env=env, capture_output=True, text=True, check=False
        )
        if check.returncode == 0:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        print(f"[bench] the source tree does not import now (attempt {attempt + 1}); retrying", file=sys.stderr)
        time.sleep(pause)
    raise SystemExit("the source tree did not import in any attempt: " + check.stderr[-500:])


def reexec_from_snapshot(root: Path) -> None:
    """Unless already running from one, take a snapshot and re-execute ``python -m bench ...`` from it."""
    if os.environ.get("BENCH_SNAPSHOT"):
        return
    folder = take(root)
    env = {
        **os.environ,
        "BENCH_SNAPSHOT": str(folder),
        # results and the document go to the repository, unless a folder was named for them (a trial run)
        "BENCH_OUTPUT_ROOT": os.environ.get("BENCH_OUTPUT_ROOT") or str(root),
        "BENCH_REVISION": f"{revision(root)}; source digest {source_digest(folder)}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p),
    }
    os.chdir(folder)
    os.execve(sys.executable, [sys.executable, "-m", "bench", *sys.argv[1:]], env)  # noqa: S606 - our own command
