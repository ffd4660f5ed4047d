"""Files and folders that hold the deployment's state: private to the user that runs keyrevoke.

The ledger, the dev server's database, reports, escalation packets, the hook file and key files are
created 0600 in folders created 0700, whatever the umask; :func:`loose_permissions` finds what an
older version (or a copy) left readable by others, for a one-line warning at start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, overload

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) as folders only the owner can open; returns ``path``.

    Folders that exist keep their mode: an operator may have opened one on purpose (the warning at
    start says so); the ones made here are 0700.
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def create_private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if it does not exist (for files another program fills, such as
    SQLite's database); an existing file is left as it is. Returns ``path``."""
    private_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(descriptor)
    return path


@overload
def open_private(path: Path, mode: Literal["wb", "ab"] = "wb") -> IO[bytes]: ...
@overload
def open_private(path: Path, mode: Literal["w", "a"]) -> IO[str]: ...
def open_private(path: Path, mode: Literal["wb", "ab", "w", "a"] = "wb") -> IO[bytes] | IO[str]:
    """Open ``path`` for writing as a 0600 file (made so on create and on every open), its folder 0700."""
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    descriptor = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    except OSError:
        os.close(descriptor)
        raise
    if "b" in mode:
        return os.fdopen(descriptor, mode, buffering=0 if mode == "ab" else -1)
    return os.fdopen(descriptor, mode, encoding="utf-8", newline="")


def write_private_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` as a 0600 file; returns ``path``."""
    with open_private(path, "wb") as handle:
        handle.write(text.encode("utf-8"))
    return path


def loose_permissions(root: Path, limit: int = 10_000) -> list[Path]:
    """Folders under ``root`` (itself included) that others may open, and files others may read or
    write; at most ``limit`` entries are looked at, so a huge tree costs no more than that."""
    if not root.is_dir():
        return []
    found = []
    for path, mode in _walk(root, limit):
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(path)
    return found


def _walk(root: Path, limit: int) -> Iterator[tuple[Path, int]]:
    pending = [root]
    seen = 0
    while pending and seen < limit:
        folder = pending.pop()
        try:
            info = folder.lstat()
        except OSError:
            continue
        seen += 1
        yield folder, info.st_mode
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if seen >= limit:
                return
            try:
                entry_stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(entry_stat.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISREG(entry_stat.st_mode):
                seen += 1
                yield Path(entry.path), entry_stat.st_mode


def permission_warning(root: Path) -> str | None:
    """One line naming what under ``root`` others can read, or None when all of it is private."""
    loose = loose_permissions(root)
    if not loose:
        return None
    first = loose[0]
    more = f" and {len(loose) - 1} more" if len(loose) > 1 else ""
    return f"warning: {first}{more} can be read by other users (want folders 0700, files 0600): chmod -R go-rwx {root}"
