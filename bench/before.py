"""Save the figures measured before the changes the first findings led to: bench/results/before.json.

``python -m bench.before [--commit b09f209]`` reads ``bench/results/full.json`` as committed in that
revision (the results the findings were written from), computes its figures with bench/figures.py, and
writes them with the runs that measured them (``runs_log`` and per-section ``provenance``). The report
reads the file for its "before" column; nothing in it is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.figures import compute
from bench.provenance import backfill

#: the commit whose saved results were measured before changes 1-5 (pooled ccxt objects, the pacer's send
#: window, the small first batch, the 10 s heartbeat timeout, the escalation packet's SQL read)
COMMIT = "b09f209"
RESULTS = "bench/results/full.json"
#: the repository: where results live even when the code runs from a snapshot (bench/snapshot.py)
ROOT = Path(os.environ.get("BENCH_OUTPUT_ROOT") or Path(__file__).resolve().parent.parent)
TARGET = ROOT / "bench" / "results" / "before.json"


def extract(results: dict[str, Any], source: str) -> dict[str, Any]:
    """The figures of ``results`` with the runs behind them; ``source`` says where the results came from."""
    full = backfill(results)
    return {
        "about": "figures measured before changes 1-5 of the findings, extracted by bench/before.py",
        "source": source,
        "machine": full.get("machine"),
        "heartbeat_timeout": full.get("heartbeat_timeout"),
        "concurrency": full.get("concurrency"),
        "runs_log": full["runs_log"],
        "provenance": full["provenance"],
        "figures": compute(full),
    }


def from_git(commit: str = COMMIT, path: str = RESULTS) -> dict[str, Any]:
    shown = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return extract(json.loads(shown), f"git show {commit}:{path}")


def load(path: Path = TARGET) -> dict[str, Any] | None:
    """The saved before-figures, or None if there are none."""
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.before", description=__doc__)
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--out", default=str(TARGET))
    args = parser.parse_args(argv)
    saved = from_git(args.commit)
    Path(args.out).write_text(json.dumps(saved, indent=1) + "\n")
    print(f"wrote {args.out}: {len(saved['figures'])} figures from {saved['source']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
