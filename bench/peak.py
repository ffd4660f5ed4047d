"""``python -m bench.peak RESULT.json COMMAND...``: run a command; write its exit code, time and peak RSS.

The peak is the kernel's ``ru_maxrss`` of the child, read with ``wait4``. It is taken here, in a small
process, because a child's ``ru_maxrss`` starts from the peak of the process that forked it: measured
from the benchmark itself (a few hundred MiB) every command would seem at least that large.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    result, command = Path(argv[0]), argv[1:]
    started = time.monotonic()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    result.write_text(json.dumps({"returncode": code, "seconds": seconds, "peak_rss_kib": usage.ru_maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
