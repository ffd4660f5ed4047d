"""The escalation packet an exchange's security team can act on, written as a stream from the ledger.

One packet per venue (in parts of ``packet_keys_per_part`` keys): who asks (the platform, its contact),
the incident window, the request in plain words, what the keys were bound to (broker id, egress IP
addresses), and per key the API key itself (the public identifier an exchange's tooling looks keys up
by; never a secret or passphrase), its account, its permissions and IP binding from the baseline probe,
and its state. Keys our own set-up could not handle (``misconfigured``) are never escalated, so never
here: only keys in state ``escalated`` are read.

The JSON document is produced a page of keys at a time: the API keys are unsealed one page at a time,
straight into the stream that ``gpg`` encrypts; the plaintext is never whole in memory nor on disk.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from keyrevoke.ledger import Ledger
from keyrevoke.ledger.outreach import EscalatedKey, escalated_page
from keyrevoke.venue_fields import account_of
from keyrevoke.venues import display_name

PAGE = 500
FORMAT = "keyrevoke-escalation-packet/1"

_IP_FACT = re.compile(r";\s*(ip\w*)=(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class PacketHeader:
    """What every part of a venue's packet says besides its keys."""

    platform_name: str
    platform_contact: str
    incident_id: str
    venue: str
    opened_at: str  # when the incident was opened at the platform
    written_at: str
    total_keys: int
    broker_id: str = ""
    egress_ips: tuple[str, ...] = ()

    def request(self) -> str:
        """The request, in plain words, for the exchange's security team."""
        exchange = display_name(self.venue)
        bound = []
        if self.broker_id:
            bound.append(f"the broker id {self.broker_id}")
        if self.egress_ips:
            bound.append(f"the IP addresses {', '.join(self.egress_ips)}")
        binding = (
            f" The keys were created for {self.platform_name} and bound to {' and '.join(bound)}: any other key "
            "bound to them may be exposed too."
            if bound
            else ""
        )
        reply = f" Please tell us at {self.platform_contact}" if self.platform_contact else " Please reply"
        return (
            f"{self.platform_name} was breached: the {exchange} API keys of its users listed here ({self.total_keys} "
            f"in all) leaked together with their secrets. Please revoke (delete) every one of them now. Each key "
            f"is given by its API key (the public identifier; no secret is included) and the account that holds "
            f"it. We could not delete these keys through the {exchange} API ourselves.{binding}{reply} which keys "
            "you revoked: we check each one and report the rest as still working."
        )


@dataclass
class PartStream:
    """One part of a packet as a stream of JSON bytes; after it is consumed, its digest and key count."""

    ledger: Ledger
    header: PacketHeader
    part: int
    parts: int
    after_seq: int
    limit: int
    keys: int = 0
    last_seq: int = 0
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    @property
    def digest(self) -> str:
        """SHA-256 of the part's content (its keys and place), the same whenever the same keys are sent."""
        return self._digest.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        header = self.header
        self._digest.update(f"{header.incident_id}\x1f{header.venue}\x1f{self.part}\x1f".encode())
        document = {
            "format": FORMAT,
            "platform": {"name": header.platform_name, "contact": header.platform_contact},
            "incident": {
                "id": header.incident_id,
                "window": {"from": header.opened_at, "to": header.written_at},
            },
            "exchange": {"venue": header.venue, "name": display_name(header.venue)},
            "request": header.request(),
            "bound_to": {"broker_id": header.broker_id, "egress_ips": list(header.egress_ips)},
            "part": self.part,
            "parts": self.parts,
            "keys_in_all_parts": header.total_keys,
        }
        opening = json.dumps(document, indent=2)
        yield (opening[:-2] + ',\n  "keys": [').encode()
        cursor, first = self.after_seq, True
        while self.keys < self.limit:
            wanted = min(PAGE, self.limit - self.keys)
            page = escalated_page(self.ledger, header.incident_id, header.venue, cursor, wanted)
            if not page:
                break
            lines = []
            for key in page:
                line = json.dumps(self._row(key), separators=(", ", ": "))
                self._digest.update(line.encode() + b"\n")
                lines.append(("\n    " if first else ",\n    ") + line)
                first = False
            cursor = self.last_seq = page[-1].seq
            self.keys += len(page)
            yield "".join(lines).encode()
        yield b"\n  ]\n}\n"

    def _row(self, key: EscalatedKey) -> dict[str, object]:
        api_key = self.ledger.box.open(key.api_key_sealed, f"{key.key_id}/api_key")
        return {
            "api_key": api_key,
            "account": account_of(self.header.venue, key.method, key.account_id, key.account_name),
            "account_id": key.account_id,
            "account_name": key.account_name,
            "permissions": [p for p in key.permissions.split(",") if p],
            "ip_restricted": ip_restricted(key.baseline_detail),
            "state": key.state,
            "platform_key_id": key.key_id,
        }


def ip_restricted(baseline_detail: str) -> bool | None:
    """Whether the baseline probe found the key bound to IP addresses; None when the venue did not say."""
    for _, value in _IP_FACT.findall(baseline_detail):
        lowered = value.lower()
        if lowered in ("bound", "true"):
            return True
        if lowered in ("any", "false"):
            return False
    return None


def part_name(venue: str, part: int, parts: int) -> str:
    """The file name of a packet part: ``binance-packet-1-of-2.json.asc``."""
    return f"{venue}-packet-{part}-of-{parts}.json.asc"
