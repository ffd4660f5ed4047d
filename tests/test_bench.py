"""The benchmark harness keeps working: its smallest scale run measures every stage and writes the document.

Only the scale section runs here: its stages (a ledger written directly, then status, keys, report and
verify-report as processes; a small real incident) end the same way on any machine. The throughput and
rate sections compare speeds, which a busy test machine bends; `python -m bench run --tiny` runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_smallest_scale_run_measures_every_stage_and_writes_the_document(tmp_path: Path) -> None:
    document = tmp_path / "benchmarks.md"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--tiny",
            "--only",
            "scale",
            "--no-postgres",
            "--results",
            str(tmp_path),
            "--out",
            str(document),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    (results_file,) = tmp_path.glob("*-tiny.json")
    results = json.loads(results_file.read_text())

    (sqlite,) = results["million"]
    stages = sqlite["stages"]
    assert stages["status"]["keys_counted"] == sqlite["keys"]
    assert "the event chain of" in stages["verify-report"]["said"]
    assert f"the {sqlite['keys']} keys and the totals follow from the events" in stages["verify-report"]["said"]
    assert {"report.json", "report.csv", "report.html"} <= set(stages["report"]["file_bytes"])
    assert all(stage["peak_rss_mib"] > 0 for stage in stages.values() if "peak_rss_mib" in stage)

    scale = results["scale"]
    assert scale["confirmed"] == scale["keys"]
    assert set(scale["extra"]["peak_rss_mib"]) == {"worker", "server", "simulator", "incident start"}
    assert scale["extra"]["history"]["max_events"] > 0

    text = document.read_text()
    first_screen = text.split("## ", 1)[0]
    for answer in ("**Machine:**", "`incident status`", "peak RSS"):
        assert answer in first_screen
    assert tempfile.gettempdir() not in text  # no path of the machine it ran on
