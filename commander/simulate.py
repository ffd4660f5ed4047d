"""Serving an inventory's keys from the venue simulator (the ``sim`` verb and the demo)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keyrevoke.errors import InputError
from keyrevoke.inventory import InventoryRow, read_inventory
from keyrevoke.text_lines import read_json
from venuesim import Scenario, SimKey, SimMaster, VenueSimulator

# What a leaked key may do at its venue; sample keys get a stable mix of these.
_PERMISSION_SETS: tuple[tuple[str, ...], ...] = (
    ("read",),
    ("read", "trade"),
    ("read", "trade"),
    ("read", "trade", "withdraw"),
)


def sim_key(row: InventoryRow) -> SimKey:
    """The venue's view of an inventory row: the same key, with a stable made-up set of permissions."""
    pick = int(hashlib.sha256(row.key_id.encode()).hexdigest(), 16) % len(_PERMISSION_SETS)
    permissions = _PERMISSION_SETS[pick]
    if row.method == "self" and "withdraw" not in permissions:
        # A key may delete itself only with a transfer or withdraw right (Bybit's delete-api):
        # the inventory says these keys are revoked that way, so the venue grants them that.
        permissions = (*permissions, "transfer")
    return SimKey(
        key_id=row.key_id,
        venue=row.venue,
        api_key=row.api_key,
        secret=row.secret,
        passphrase=row.passphrase,
        account_id=row.account_id,
        account_name=row.account_name,
        permissions=permissions,
    )


def read_masters(path: Path | None) -> list[SimMaster]:
    if path is None or not path.exists():
        return []
    raw = read_json(path, "master credentials file")
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object of venue -> credentials")
    masters = []
    for venue, entry in raw.items():
        if not isinstance(entry, dict) or not entry.get("api_key") or not entry.get("secret"):
            raise InputError(f"{path}: venue {venue!r} needs api_key and secret")
        masters.append(
            SimMaster(
                venue=venue,
                api_key=str(entry["api_key"]),
                secret=str(entry["secret"]),
                passphrase=str(entry.get("passphrase", "")),
                account=str(entry.get("account", "")),
            )
        )
    return masters


def simulator_for(
    inventory: Path,
    masters: Path | None,
    scenario: Path | None = None,
    port: int = 0,
) -> tuple[VenueSimulator, int]:
    """A simulator serving every valid row of ``inventory``; also returns how many rows were skipped."""
    rows, errors = read_inventory(inventory)
    if not rows:
        raise InputError(f"{inventory}: no valid row to serve")
    # read here, not by Scenario.from_file: a damaged file is named with its line, in one line
    data = read_json(scenario, "scenario file") if scenario else None
    if data is not None and not isinstance(data, dict):
        raise InputError(f"{scenario}: a scenario is a JSON object")
    try:
        loaded = Scenario.from_dict(data) if data is not None else None
        simulator = VenueSimulator((sim_key(row) for row in rows), read_masters(masters), loaded, port=port)
    except (OSError, ValueError) as error:
        # the simulator names the field or venue it cannot use; say which file it came from
        raise InputError(f"{scenario or inventory}: {error}") from None
    return simulator, len(errors)
