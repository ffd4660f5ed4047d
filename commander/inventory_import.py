"""``keyrevoke inventory import``: read a file, keep its good rows, report the bad ones."""

from __future__ import annotations

from pathlib import Path

from keyrevoke.inventory import read_inventory
from keyrevoke.ledger import ImportResult, Ledger


def import_inventory(ledger: Ledger, path: Path) -> ImportResult:
    """Import every valid row of ``path``; errors of the file and of the ledger come back together."""
    rows, errors = read_inventory(path)
    result = ledger.import_rows(rows, str(path))
    return ImportResult(result.added, result.unchanged, sorted([*errors, *result.errors], key=lambda e: e.line))
