"""``python -m bench run [--only SECTIONS] [--quick]``: measure the current code against its baselines, side by
side, and write ``bench/results/<run>.json`` and the document (docs/benchmarks.md).

``python -m bench report RESULTS.json`` writes the document again from a saved run.

Sections: throughput (keyrevoke, the plain script, a workflow per key), rate (keyrevoke at each venue's full
limit), workers (three workers at one venue's full limit), scale (the million-key ledger stages and the
workflows at a size that finishes, with every process's peak RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run the benchmarks, then write the results and the document")
    run.add_argument("--quick", action="store_true", help="fewer repetitions and smaller runs (about 20 minutes)")
    run.add_argument("--tiny", action="store_true", help="every section at sizes that only show it works")
    run.add_argument("--only", help="comma list of sections: throughput,rate,workers,scale (default: all)")
    run.add_argument("--no-postgres", action="store_true", help="the million-key stages on SQLite only")
    run.add_argument("--results", default=str(ROOT / "bench" / "results"), help="folder for <run>.json")
    run.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="the document to write")
    report = verbs.add_parser("report", help="write the document from a saved run")
    report.add_argument("results", help="a bench/results/<run>.json")
    report.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # the benchmark's own processes import bench and keyrevoke's packages from here
    from bench.report import render

    if args.verb == "report":
        results = json.loads(Path(args.results).read_text())
    else:
        from bench.suite import SECTIONS, plan_for, run_suite

        only = set(args.only.split(",")) if args.only else set(SECTIONS)
        if only - set(SECTIONS):
            parser.error(f"--only: unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}")
        plan = plan_for(args.quick, args.tiny)
        if args.no_postgres:
            plan = type(plan)(**{**plan.__dict__, "postgres": False})
        flags = {"--quick": args.quick, "--tiny": args.tiny, "--no-postgres": args.no_postgres}
        command = " ".join(["python -m bench run", *(flag for flag, on in flags.items() if on)])
        command += f" --only {args.only}" if args.only else ""
        mode = "-quick" if args.quick else "-tiny" if args.tiny else ""
        name = time.strftime("%Y-%m-%dT%H%M", time.gmtime()) + mode
        target = Path(args.results) / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)

        def save(results: dict[str, Any]) -> None:
            target.write_text(json.dumps({**results, "name": name, "command": command}, indent=1, default=str))

        asyncio.run(run_suite(plan, only, save))
        results = json.loads(target.read_text())
        print(f"wrote {target}")
    Path(args.out).write_text(render(results, results["command"]))
    print(f"wrote {args.out}")
    sys.stdout.flush()
    # The Temporal SDK's runtime can abort the interpreter at exit (sdk-python issue 300): leave without it.
    os._exit(0)


if __name__ == "__main__":
    main()
