"""Reading a file a person handed us, line by line, as UTF-8 text: every input reader goes through here.

A line that cannot be text (a byte that is not UTF-8, a NUL byte of a binary file, more bytes than a
line may hold) comes out as a ``TextLine`` with ``error`` set and its number, and the lines after it
still come: one damaged line costs one line. Memory stays bounded by the longest allowed line,
whatever the file. Whole-file readers (``read_text``) turn the first such line into one ``InputError``
naming the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from keyrevoke.errors import InputError

#: Longest line kept (bytes, line ending included); longer lines are reported, not read.
MAX_LINE_BYTES = 16 * 1024
_BOM = "\ufeff"
# Reading on past a line that is too long: in pieces of this size, never the whole line at once.
_SKIP_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TextLine:
    """One physical line: its 1-based ``number``, its ``text`` without the line ending, or ``error``."""

    number: int
    text: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def check_readable(path: Path, what: str) -> None:
    """Refuse, in one line naming ``path``, a file that is missing, a folder or unreadable."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")


def text_lines(path: Path, what: str = "file", max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[TextLine]:
    """The lines of ``path`` in order (``\\n``, ``\\r\\n`` or a lone ``\\r`` end one), each decoded or marked.

    A UTF-8 byte-order mark at the start (as spreadsheets write it) is dropped.
    """
    check_readable(path, what)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    with handle:
        yield from _lines_of(handle, max_line_bytes)


def _lines_of(handle: BinaryIO, max_line_bytes: int) -> Iterator[TextLine]:
    number = 0
    for raw, too_long in _raw_lines(handle, max_line_bytes):
        number += 1
        if too_long:
            yield TextLine(number, "", f"line longer than {max_line_bytes} bytes")
            continue
        body = raw.rstrip(b"\r\n")
        if b"\x00" in body:
            yield TextLine(number, "", f"binary data, not text (a NUL byte at column {body.index(0) + 1})")
            continue
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            yield TextLine(number, "", f"not UTF-8 text (byte 0x{body[error.start]:02X} at column {error.start + 1})")
            continue
        if number == 1 and text.startswith(_BOM):
            text = text[1:]
        yield TextLine(number, text)


def _raw_lines(handle: BinaryIO, max_line_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """Physical lines as bytes with their ending, and whether each was longer than allowed (then b"")."""
    buffer = b""
    eof = False
    while True:
        end = _line_end(buffer, eof)
        if end == -1:
            if len(buffer) - buffer.endswith(b"\r") > max_line_bytes:
                yield b"", True
                buffer, eof = _skip_line(handle, buffer[-1:] if buffer.endswith(b"\r") else b"")
                continue
            if eof:
                if buffer:
                    yield buffer, False
                return
            piece = handle.readline(max_line_bytes + 2 - len(buffer))
            eof = not piece
            buffer += piece
            continue
        line, buffer = buffer[:end], buffer[end:]
        yield (b"", True) if len(line.rstrip(b"\r\n")) > max_line_bytes else (line, False)


def _line_end(buffer: bytes, eof: bool) -> int:
    """Where the first line of ``buffer`` ends (after its "\n", "\r\n" or lone "\r"); -1: not in it yet."""
    newline, carriage = buffer.find(b"\n"), buffer.find(b"\r")
    if carriage == -1 or (newline != -1 and newline < carriage):
        return newline + 1 if newline != -1 else -1
    if carriage + 1 < len(buffer):
        return carriage + 2 if buffer[carriage + 1] == 0x0A else carriage + 1
    return carriage + 1 if eof else -1  # a "\r" last: a "\n" may follow


def _skip_line(handle: BinaryIO, buffer: bytes) -> tuple[bytes, bool]:
    """Read past the rest of an over-long line, in pieces; returns what follows it, and whether at the end."""
    while True:
        piece = handle.readline(_SKIP_CHUNK)
        if not piece:
            return b"", True
        buffer += piece
        end = _line_end(buffer, False)
        if end != -1:
            return buffer[end:], False
        buffer = buffer[-1:] if buffer.endswith(b"\r") else b""


def read_text(path: Path, what: str = "file", max_bytes: int = 16 * 1024 * 1024) -> str:
    """The whole of a small text file (owners, key lists, settings files, reports), or one ``InputError``.

    The error names the file and, for a damaged line, the line: ``owners.txt:3: not UTF-8 text (...)``.
    """
    check_readable(path, what)
    if path.stat().st_size > max_bytes:
        raise InputError(f"{path}: larger than {max_bytes} bytes; not a {what}")
    lines: list[str] = []
    for line in text_lines(path, what, max_line_bytes=max_bytes):
        if line.error:
            raise InputError(f"{path}:{line.number}: {line.error}")
        lines.append(line.text)
    return "\n".join(lines)


def read_json(path: Path, what: str = "JSON file", max_bytes: int = 16 * 1024 * 1024) -> object:
    """A small JSON file's value, or one ``InputError`` naming the file and the line where it breaks."""
    text = read_text(path, what, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError):
        # json raises these, not JSONDecodeError, for a number too long or nesting too deep
        raise InputError(f"{path}: not valid JSON (a number too long or nesting too deep)") from None
