"""The benchmark harness keeps working: its smallest configuration runs every section and writes the document."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_smallest_benchmark_run_measures_every_section_and_writes_the_document(tmp_path: Path) -> None:
    document = tmp_path / "benchmarks.md"
    ran = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--tiny", "--results", str(tmp_path), "--out", str(document)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    (results_file,) = tmp_path.glob("*-tiny.json")
    results = json.loads(results_file.read_text())

    for rep in results["throughput"]:
        for variant in ("plain", "keyrevoke", "perkey"):
            assert rep[variant]["confirmed"] == rep[variant]["keys"], (variant, rep[variant]["counts"])
            assert rep[variant]["extra"]["cpu"]["worker"] > 0
    for section in ("rate", "workers"):
        (run,) = results[section]["runs"]
        assert run["confirmed"] == run["keys"], (section, run["counts"])
    assert results["workers"]["runs"][0]["extra"]["workers"] == 3

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
    for answer in ("keyrevoke / plain script", "keyrevoke / workflow per key", "**Machine:**", "`incident status`"):
        assert answer in first_screen
    assert tempfile.gettempdir() not in text  # no path of the machine it ran on
