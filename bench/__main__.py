"""``python -m bench run [--quick]``: run the benchmarks and write docs/benchmarks.md.

``python -m bench report [--quick]`` rewrites the document from the last saved results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

#: where the source runs from (a snapshot while benchmarking) and where results and the document go
ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(os.environ.get("BENCH_OUTPUT_ROOT") or ROOT)


def merge(previous: dict[str, Any], results: dict[str, Any], partial_command: str) -> dict[str, Any]:
    """A partial run's results (``--only``) merged into the saved ones: its sections replace theirs.

    The saved plan, machine and command stay; the scale runs are kept per size; the time adds up.
    """
    scales = dict(previous.get("scales", {}))
    if previous.get("scale"):
        scales.setdefault(str(previous["scale"]["keys"]), previous["scale"])
    scales.update(results.get("scales", {}))
    partial = [*previous.get("partial_runs", []), {"command": partial_command, "plan": results["plan"]}]
    merged = {**previous, **results, "scales": scales, "partial_runs": partial}
    merged["plan"] = previous.get("plan", results["plan"])
    merged["machine"] = previous.get("machine", results["machine"])
    if scales:
        merged["scale"] = max(scales.values(), key=lambda r: r["keys"])
    merged["elapsed_seconds"] = previous.get("elapsed_seconds", 0) + results.get("elapsed_seconds", 0)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run the benchmarks, then write the document")
    run.add_argument("--quick", action="store_true", help="small sizes, one or two runs each (about 5 minutes)")
    run.add_argument("--reps", type=int, help="repetitions of the side-by-side throughput runs")
    run.add_argument("--scale-keys", type=int, help="size of the scale/memory run (full mode; default 100000, 0 skips)")
    run.add_argument(
        "--scale-minutes", type=float, help="stop the scale run after this long, keeping what it did (default 90)"
    )
    run.add_argument("--only", help="comma list: throughput,big,rate,recovery,profile,scale")
    run.add_argument("--out", default=str(OUTPUT / "docs" / "benchmarks.md"), help="the document to write")
    report = verbs.add_parser("report", help="rewrite the document from saved results")
    report.add_argument("--quick", action="store_true")
    report.add_argument("--out", default=str(OUTPUT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # the benchmark's own processes import bench and keyrevoke's packages from here
    from bench.report import render

    mode = "quick" if args.quick else "full"
    results_file = OUTPUT / "bench" / "results" / f"{mode}.json"
    command = "python -m bench run" + (" --quick" if args.quick else "")
    if args.verb == "run":
        from bench.snapshot import reexec_from_snapshot

        reexec_from_snapshot(ROOT)  # from here on, this process runs from a snapshot of the source
        from bench.suite import plan_for
        from bench.suite import run as run_suite

        if args.scale_keys is not None:
            command += f" --scale-keys {args.scale_keys}"
        from bench.provenance import record, run_entry

        only = set(args.only.split(",")) if args.only else None
        previous = json.loads(results_file.read_text()) if only and results_file.exists() else {}
        results = run_suite(plan_for(args.quick, args.scale_keys, args.reps, args.scale_minutes), results_file, only)
        # which run produced which section, on which code: kept per section through later partial runs
        this_run = run_entry(command + (f" --only {args.only}" if only else ""), results)
        if only:
            results = merge(previous, results, command + f" --only {args.only}")
            command = previous.get("command", command)
        record(previous or None, results, this_run)
        results["command"] = command
        results_file.write_text(json.dumps(results, indent=1, default=str))
    else:
        results = json.loads(results_file.read_text())
        command = results.get("command", command)
    Path(args.out).write_text(render(results, command))
    print(f"wrote {Path(args.out).relative_to(OUTPUT) if Path(args.out).is_relative_to(OUTPUT) else args.out}")
    snapshot = os.environ.get("BENCH_SNAPSHOT")
    if snapshot and args.verb == "run":
        import shutil

        shutil.rmtree(snapshot, ignore_errors=True)
    sys.stdout.flush()
    # The Temporal SDK's runtime can abort the interpreter at exit (sdk-python issue 300): leave without it.
    os._exit(0)


if __name__ == "__main__":
    main()
