"""One notice per owner: each of their keys by venue and key hint, and what they must do about it.

A key ends in one of four places for its owner:

- **dead**: revoked and confirmed by the exchange (it rejects the key): nothing to do but reissue;
- **still working** (or may be): live, failed, unconfirmed, handed back, never sent (our own set-up
  lacked something), closed by hand: delete it now at the exchange's API management page and
  reissue with an IP allow-list;
- **sent to the exchange**: escalated to the exchange's security team, which revokes it; meanwhile
  the owner should delete it too;
- **in progress**: its venue is still working on it; the owner hears again.

The notice is the same whenever the owner's keys are in the same places: its digest says so, and a
notice already sent with that digest is not sent again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from keyrevoke.ledger.outreach import OwnerKey
from keyrevoke.states import KeyState
from keyrevoke.venues import API_MANAGEMENT_URLS, display_name

OWNER_NOTICE = "owner_notice"


class Outcome(StrEnum):
    DEAD = "dead"
    STILL_WORKING = "still_working"
    SENT_TO_EXCHANGE = "sent_to_exchange"
    IN_PROGRESS = "in_progress"


_IN_PROGRESS = frozenset({KeyState.PENDING, KeyState.FROZEN, KeyState.REVOKING, KeyState.REVOKED})


def outcome_of(state: str) -> Outcome:
    """Where a key in ``state`` stands for its owner (an unknown state may still work)."""
    if state == KeyState.CONFIRMED.value:
        return Outcome.DEAD
    if state == KeyState.ESCALATED.value:
        return Outcome.SENT_TO_EXCHANGE
    if state in {s.value for s in _IN_PROGRESS}:
        return Outcome.IN_PROGRESS
    return Outcome.STILL_WORKING


@dataclass(frozen=True)
class NoticeLine:
    """One key in an owner notice."""

    venue: str
    key_id: str
    key_hint: str
    state: str
    outcome: Outcome
    manage_url: str

    def what_to_do(self) -> str:
        exchange = display_name(self.venue)
        where = f"at {self.manage_url}" if self.manage_url else f"in {exchange}'s API management page"
        if self.outcome is Outcome.DEAD:
            return (
                f"revoked, and {exchange} now rejects it. Nothing more to do; if you still need a key, create a new "
                "one with an IP allow-list."
            )
        if self.outcome is Outcome.SENT_TO_EXCHANGE:
            return (
                f"{exchange}'s API did not let us delete it, so we sent it to {exchange}'s security team to revoke. "
                f"Delete it yourself now {where} to be safe, and reissue it with an IP allow-list."
            )
        if self.outcome is Outcome.IN_PROGRESS:
            return "being revoked now; you will hear from us again."
        if self.state == KeyState.UNFROZEN.value:
            return (
                "NOT REVOKED: the response was called off before it, and the platform uses the key again. It may "
                f"have leaked: to be safe, delete it {where} and reissue it with an IP allow-list."
            )
        return f"MAY STILL WORK. Delete it now {where} and reissue it with an IP allow-list."

    def as_dict(self) -> dict[str, str]:
        return {
            "venue": self.venue,
            "key_id": self.key_id,
            "key_hint": self.key_hint,
            "state": self.state,
            "outcome": self.outcome.value,
            "what_to_do": self.what_to_do(),
            "manage_url": self.manage_url,
        }


@dataclass(frozen=True)
class OwnerNotice:
    """What one owner is told about all their keys in an incident."""

    incident_id: str
    owner: str
    platform_name: str
    lines: tuple[NoticeLine, ...]

    @property
    def digest(self) -> str:
        """The same whenever the owner's keys stand where they stood: a repeat is not sent twice."""
        material = "\n".join(f"{line.venue}\x1f{line.key_id}\x1f{line.outcome.value}" for line in self.lines)
        return hashlib.sha256(f"{self.incident_id}\x1f{self.owner}\n{material}".encode()).hexdigest()

    @property
    def idempotency_key(self) -> str:
        return f"{self.incident_id}/owner/{self.owner}/{OWNER_NOTICE}/{self.digest[:16]}"

    def counts(self) -> dict[Outcome, int]:
        found = dict.fromkeys(Outcome, 0)
        for line in self.lines:
            found[line.outcome] += 1
        return found

    def summary(self) -> str:
        """One line for the event log: what the owner was told, in numbers."""
        counts = self.counts()
        return (
            f"{counts[Outcome.DEAD]} dead, {counts[Outcome.STILL_WORKING]} may still work (delete now), "
            f"{counts[Outcome.SENT_TO_EXCHANGE]} sent to the exchange, {counts[Outcome.IN_PROGRESS]} in progress"
        )

    @property
    def subject(self) -> str:
        still = self.counts()[Outcome.STILL_WORKING] + self.counts()[Outcome.SENT_TO_EXCHANGE]
        action = f": {still} need you to delete them now" if still else ""
        return f"{self.platform_name}: what happened to your exchange API keys{action} (incident {self.incident_id})"

    def text(self) -> str:
        """The notice as plain text: each key by venue and key hint, with what to do."""
        out = [
            f"{self.platform_name} was breached, and the exchange API keys you connected to it may have leaked with "
            "their secrets. This is where each of them stands now.",
            "",
        ]
        venue = ""
        for line in self.lines:
            if line.venue != venue:
                if venue:
                    out.append("")
                venue = line.venue
                out.append(display_name(venue))
            out.append(f"  - key {line.key_hint}: {line.what_to_do()}")
        out += ["", f"Incident {self.incident_id}. We will write again if anything changes."]
        return "\n".join(out) + "\n"

    def payload(self) -> dict[str, object]:
        """The platform hook's body fields (``action``: ``owner_notice``)."""
        return {
            "action": OWNER_NOTICE,
            "incident_id": self.incident_id,
            "owner": self.owner,
            "subject": self.subject,
            "message": self.text(),
            "keys": [line.as_dict() for line in self.lines],
            "digest": self.digest,
        }


def compose(
    incident_id: str,
    owner: str,
    keys: Sequence[OwnerKey],
    platform_name: str,
    manage_urls: Mapping[str, str] | None = None,
) -> OwnerNotice:
    """The notice for ``owner`` from their keys in the incident (any order: sorted by venue here)."""
    urls = {**API_MANAGEMENT_URLS, **(manage_urls or {})}
    lines = tuple(
        NoticeLine(key.venue, key.key_id, key.key_hint, key.state, outcome_of(key.state), urls.get(key.venue, ""))
        for key in sorted(keys, key=lambda k: (k.venue, k.key_id))
    )
    return OwnerNotice(incident_id, owner, platform_name, lines)
