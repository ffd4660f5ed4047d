"""Serving an inventory's keys from the venue simulator (the ``sim`` verb and the demo)."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from keyrevoke.errors import InputError
from keyrevoke.inventory import InventoryRow, read_inventory
from keyrevoke.text_lines import read_json
from keyrevoke.venues import methods_for
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
        # a key that deletes itself is a main account's (Bybit's delete-api takes no other)
        main_account=row.method == "self",
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


def ensure_sim_masters(path: Path, inventory: Path) -> list[str] | None:
    """Write made-up master credentials to ``path`` if it does not exist, for the simulator and the workers.

    One entry per venue of ``inventory`` with a revocation API (venues without one have no master),
    with a passphrase where the venue signs with one. Returns the venues written, or None if the file
    was there already (it is never changed). The simulator registers these as the platform's masters,
    so a simulated incident runs without a hand-made file.
    """
    if path.exists():
        return None
    rows, _ = read_inventory(inventory)
    entries: dict[str, dict[str, str]] = {}
    for venue in sorted({row.venue for row in rows}):
        methods = methods_for(venue)
        if methods is None or methods.methods == ("manual",):
            continue
        entries[venue] = {"api_key": secrets.token_hex(16), "secret": secrets.token_hex(24)}
        if methods.needs_passphrase:
            entries[venue]["passphrase"] = secrets.token_hex(8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return list(entries)


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
    loaded = load_scenario(scenario)
    try:
        simulator = VenueSimulator((sim_key(row) for row in rows), read_masters(masters), loaded, port=port)
    except (OSError, ValueError) as error:
        # the simulator names the field or venue it cannot use; say which file it came from
        raise InputError(f"{scenario or inventory}: {error}") from None
    return simulator, len(errors)


def load_scenario(scenario: Path | None) -> Scenario | None:
    """The simulator's fault scenario from its JSON file; a damaged file is named with its line, in one line."""
    if scenario is None:
        return None
    # read here, not by Scenario.from_file, for that one-line error
    data = read_json(scenario, "scenario file")
    if not isinstance(data, dict):
        raise InputError(f"{scenario}: a scenario is a JSON object")
    try:
        return Scenario.from_dict(data)
    except ValueError as error:
        raise InputError(f"{scenario}: {error}") from None
