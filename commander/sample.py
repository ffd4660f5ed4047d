"""A sample inventory for the embedded demo: made-up keys over every venue the simulator serves.

The same seed gives the same keys, so running the demo again imports nothing twice.
"""

from __future__ import annotations

import base64
import csv
import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from keyrevoke.inventory import COLUMNS
from keyrevoke.venues import methods_for

_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SampleVenue:
    venue: str
    methods: tuple[str, ...]
    key_length: int
    secret_length: int
    credential_format: str = "alnum"  # "alnum", "base64" (Kraken's secrets) or "ec" (Coinbase's EC keys)

    @property
    def manual(self) -> bool:
        """No revocation API: its keys are escalated, so the demo leaves such venues out."""
        return self.methods == ("manual",)

    @property
    def needs_passphrase(self) -> bool:
        methods = methods_for(self.venue)
        return methods is not None and methods.needs_passphrase


SAMPLE_VENUES: tuple[SampleVenue, ...] = (
    SampleVenue("binance", ("broker",), 64, 64),
    SampleVenue("bybit", ("self", "sub"), 18, 36),
    SampleVenue("okx", ("sub",), 32, 32),
    SampleVenue("kucoin", ("sub",), 24, 36),
    SampleVenue("gate", ("sub",), 32, 64),
    SampleVenue("mexc", ("sub",), 18, 32),
    SampleVenue("kraken", ("manual",), 56, 64, "base64"),
    SampleVenue("coinbase", ("manual",), 0, 0, "ec"),
)
#: the venues a demo can take to the end on its own: each has a revocation API
API_VENUES: tuple[str, ...] = tuple(v.venue for v in SAMPLE_VENUES if not v.manual)
PASSPHRASE_LENGTH = 12


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(length))


def _credentials(rng: random.Random, venue: SampleVenue) -> tuple[str, str]:
    """A made-up API key and secret in the venue's own format."""
    if venue.credential_format == "base64":
        return _token(rng, venue.key_length), base64.b64encode(rng.randbytes(venue.secret_length)).decode()
    if venue.credential_format == "ec":
        # Coinbase keys are named resources with an EC P-256 private key (base64 DER in the inventory).
        private = ec.derive_private_key(rng.randrange(1, 2**255), ec.SECP256R1())
        der = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        name = f"organizations/{rng.randbytes(8).hex()}/apiKeys/{rng.randbytes(8).hex()}"
        return name, base64.b64encode(der).decode()
    return _token(rng, venue.key_length), _token(rng, venue.secret_length)


def write_sample(folder: Path, keys: int, seed: int = 2022, venues: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``inventory.csv`` (``keys`` rows spread over the sample venues) and ``masters.json``.

    ``venues`` picks some of the sample venues (default: every venue with a revocation API).
    """
    chosen = [v for v in SAMPLE_VENUES if (v.venue in venues if venues is not None else not v.manual)]
    if not chosen:
        raise ValueError(f"no sample venue among {venues}")
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    inventory = folder / "inventory.csv"
    with inventory.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for number in range(keys):
            venue = chosen[number % len(chosen)]
            api_key, secret = _credentials(rng, venue)
            owner = f"user{rng.randrange(max(1, keys // 2)):05d}"
            account_id = str(rng.randrange(10**8, 10**9))
            writer.writerow(
                {
                    "key_id": f"k{number:06d}",
                    "venue": venue.venue,
                    "owner": owner,
                    # every sub-account has both: a numeric user id and a name (venues need one or the other)
                    "account_id": account_id,
                    "account_name": f"sub{account_id}",
                    "api_key": api_key,
                    "secret": secret,
                    "passphrase": _token(rng, PASSPHRASE_LENGTH) if venue.needs_passphrase else "",
                    "method": rng.choice(venue.methods),
                    "priority": rng.choice((0, 0, 0, 5, 10)),
                }
            )
    masters = folder / "masters.json"
    entries: dict[str, dict[str, str]] = {}
    for v in chosen:
        if v.manual:
            continue  # nobody holds a master key for a venue without a revocation API
        entries[v.venue] = {"api_key": _token(rng, v.key_length), "secret": _token(rng, v.secret_length)}
        if v.needs_passphrase:
            entries[v.venue]["passphrase"] = _token(rng, PASSPHRASE_LENGTH)
    masters.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    masters.chmod(0o600)
    return inventory, masters
