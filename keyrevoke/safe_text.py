"""Untrusted text (owners, accounts, key ids, venue answers) made safe for where people read it.

Inventory values come from whoever filled the platform's database, and venue answers from the venue:
in a spreadsheet a cell starting with ``=`` runs as a formula, and on a terminal an escape sequence
can clear the screen or paint a fake status. :func:`csv_cell` and :func:`csv_row` neutralize the
first (OWASP's CSV injection rule), :func:`terminal_text` the second. HTML is escaped where it is
written (``html.escape``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

#: characters that make a spreadsheet read a cell as a formula (or, for tab and CR, hide one)
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting with = + - @ tab or CR gets a leading ``'``.

    Numbers, booleans and None pass as they are (a negative number is a number, not a formula).
    """
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """:func:`csv_cell` over one row's values."""
    return [csv_cell(value) for value in values]


def terminal_text(value: object) -> str:
    """``value`` as text that prints as itself on a terminal: escape sequences and control or
    format characters (bidi overrides included) are shown as ``\\x1b``-style escapes, never obeyed."""
    text = str(value)
    if text.isprintable():
        return text
    # Escaping the ESC that starts a sequence is enough: the rest of it is plain printable text.
    return "".join(_escaped(ch) if unicodedata.category(ch) in _UNSAFE else ch for ch in text)


# control, format (bidi overrides, zero-width), surrogate, private-use, line and paragraph separators
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def _escaped(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
