"""Each exchange's security contact for escalation packets: an address and an OpenPGP public key.

The contacts file (``KEYREVOKE_CONTACTS_FILE``) is JSON::

    {"binance": {"address": "security@binance.example", "public_key_file": "binance-security.asc"}}

A relative key path is read beside the file. A venue may have a key and no address (its packet is
encrypted but not mailed); a venue not listed has no contact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from keyrevoke.errors import ConfigurationError


@dataclass(frozen=True)
class ExchangeContact:
    venue: str
    address: str  # empty: nobody to mail
    public_key_file: Path | None


def load_contacts(path: Path) -> dict[str, ExchangeContact]:
    """The contacts in ``path`` by venue; no file means no contacts. Errors name the file and the field."""
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path}: cannot read the contacts file ({error})") from None
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path}: expected an object of venue -> {{address, public_key_file}}")
    contacts: dict[str, ExchangeContact] = {}
    for venue, entry in document.items():
        where = f"{path}: {venue}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: expected an object with address and public_key_file")
        unknown = set(entry) - {"address", "public_key_file"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        address = entry.get("address") or ""
        key_file = entry.get("public_key_file") or ""
        if not isinstance(address, str) or (address and "@" not in parseaddr(address)[1]):
            raise ConfigurationError(f"{where}.address: not a mail address: {address!r}")
        if not isinstance(key_file, str):
            raise ConfigurationError(f"{where}.public_key_file: expected a file path")
        key_path = (path.parent / key_file) if key_file and not Path(key_file).is_absolute() else Path(key_file)
        contacts[venue.lower()] = ExchangeContact(venue.lower(), address, key_path if key_file else None)
    return contacts
