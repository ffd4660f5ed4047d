"""CSV records from numbered text lines, one at a time, each with the line it starts on.

A damaged record costs only itself. A quote that opens a cell and never closes (a stray quote) would,
in a plain CSV reader, swallow every line after it into one cell; here a record may run over at most
``max_lines`` lines and must then have the header's number of fields, or its first line alone is
reported as holding a stray quote and reading goes on with the next line.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from keyrevoke.text_lines import TextLine

#: Lines one record may run over (a quoted cell holding line breaks). Small: no inventory cell may
#: hold a line break, and a longer run is far likelier a stray quote than a cell.
MAX_RECORD_LINES = 4


@dataclass(frozen=True)
class CsvRecord:
    """A record's fields (``error`` empty), or why its lines could not be one; ``line`` is where it starts."""

    line: int
    fields: tuple[str, ...] = ()
    error: str = ""
    last_line: int = 0  # where it ends, when it runs over several lines

    @property
    def multiline(self) -> bool:
        return self.last_line > self.line


class _Unfinished(Exception):
    """The text ends inside a quoted cell."""


def _parse(text: str) -> tuple[str, ...]:
    # strict: a quote inside an unquoted cell, or text after a closing quote, is an error, not data
    rows = list(csv.reader([text], strict=True))
    if len(rows) != 1:
        raise _Unfinished
    return tuple(rows[0])


def _parse_lines(lines: list[TextLine]) -> tuple[str, ...]:
    try:
        return _parse("\n".join(line.text for line in lines))
    except csv.Error as error:
        if "unexpected end of data" in str(error) or "newline inside string" in str(error):
            raise _Unfinished from None
        raise


def csv_records(
    lines: Iterable[TextLine], width: int | None = None, max_lines: int = MAX_RECORD_LINES
) -> Iterator[CsvRecord]:
    """Records of ``lines`` in order; blank lines are skipped.

    ``width``: the header's number of fields, which a record over several lines must have to be taken
    as one (None: the first record is the header and sets it).
    """
    source = iter(lines)
    ahead: deque[TextLine] = deque()

    def take() -> TextLine | None:
        if ahead:
            return ahead.popleft()
        return next(source, None)

    while (first := take()) is not None:
        if first.error:
            yield CsvRecord(first.number, error=first.error)
            continue
        if not first.text.strip():
            continue
        try:
            fields = _parse_lines([first])
        except _Unfinished:
            # a header runs over no line break: its width is what a longer record is checked against
            record = _run_over(first, take, ahead, width, max_lines if width is not None else 1)
        except csv.Error:
            record = CsvRecord(first.number, error='a stray quote (") inside a cell')
        else:
            record = CsvRecord(first.number, fields, last_line=first.number)
        if width is None and not record.error:
            width = len(record.fields)
        yield record


def _run_over(
    first: TextLine,
    take: Callable[[], TextLine | None],
    ahead: deque[TextLine],
    width: int | None,
    max_lines: int,
) -> CsvRecord:
    """The record that starts at ``first`` and is still inside a quoted cell at the end of its line."""
    taken = [first]
    while len(taken) < max_lines:
        following = take()
        if following is None or following.error:
            if following is not None:
                ahead.appendleft(following)
            break
        taken.append(following)
        try:
            fields = _parse_lines(taken)
        except _Unfinished:
            continue
        except csv.Error:
            break
        if width is not None and len(fields) != width:
            break
        return CsvRecord(first.number, fields, last_line=following.number)
    # not one record over several lines: a quote that never closes on the first line; the lines
    # after it are records of their own
    ahead.extendleft(reversed(taken[1:]))
    return CsvRecord(first.number, error='a stray quote (") opens a cell that does not close on its line')
