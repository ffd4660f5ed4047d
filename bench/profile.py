"""Reading a sampling profile (collapsed stacks: ``frame;frame;... count``) into top hot spots.

``self`` is the share of samples whose innermost frame is the function; ``inclusive`` the share of
samples with the function anywhere on the stack. Frames are shown as ``function (module)`` with the
module path cut to its package-relative part, so no machine path reaches the report.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _short(file: str) -> str:
    if not file.startswith("/"):
        return file  # the profiler already made it relative to its import root
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/"):
        if marker in file:
            return file.split(marker, 1)[1]
    parts = Path(file).parts
    for anchor in ("activities", "keyrevoke", "workers", "workflows", "commander", "venuesim", "bench"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return Path(file).name


def frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['func']} ({_short(match['file'])})"


@dataclass(frozen=True)
class Hotspots:
    samples: int
    self_top: list[tuple[str, float]]
    inclusive_top: list[tuple[str, float]]
    by_area: list[tuple[str, float]]


#: areas a sample is charged to: the first area (in this order) with a matching frame anywhere on its stack
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ccxt exchange objects (construction; lending and taking back pooled ones)",
     ("ExchangeFactory.create", "ExchangeFactory.release", "BaseExchange.__init__")),
    ("activity heartbeats (encode and seal the details)", ("_heartbeat_async", "record_activity_heartbeat",
                                                           "_send_latest_heartbeat", "_heartbeating")),
    ("ledger (SQLite, hash-chained events)", ("keyrevoke/ledger/",)),
    ("platform hook (file sink)", ("platform_hook.py",)),
    ("secrets: decryption", ("keyrevoke/crypto.py",)),
    ("venue requests (ccxt signing and parsing, aiohttp)", ("ccxt/", "aiohttp/", "yarl/")),
    ("Temporal SDK (workflow and activity tasks, payload codec)", ("temporalio/", "payload_codec.py")),
    ("thread-pool hand-offs (asyncio.to_thread)", ("to_thread", "_write_to_self", "_read_from_self",
                                                   "call_soon_threadsafe", "concurrent/futures/thread.py")),
    ("tracing and metrics wrappers", ("keyrevoke/observability/",)),
)  # fmt: skip


def read_collapsed(path: Path, top: int = 12) -> Hotspots:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for name in dict.fromkeys(frames):  # once per sample; in stack order, so that ties rank the same every time
            inclusive[name] += count
        areas[_area(frames)] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / total) for name, n in counter.most_common(top)] if total else []

    return Hotspots(total, share(self_counts), share(inclusive), share(areas))


def _area(frames: list[str]) -> str:
    for area, needles in AREAS:
        if any(needle in frame for frame in frames for needle in needles):
            return area
    return "other (asyncio loop, batch code, start-up)"
