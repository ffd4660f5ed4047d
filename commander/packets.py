"""``keyrevoke incident packets``: where each venue's escalation packet stands, and sending it again.

Without ``--send`` it prints, per venue, the packet's lines from the event log: mailed (to whom, the
message id, when) or not (and why: nobody was sent anything). With ``--send`` it writes and mails the
packet of each venue with escalated keys now (say, after the exchange's contact was added to the
contacts file); a part already mailed is not mailed again.
"""

from __future__ import annotations

from keyrevoke.ledger import Ledger
from keyrevoke.settings import Settings
from keyrevoke.states import KeyState

PACKET_EVENTS = ("venue.escalated", "escalation.packet.sent", "escalation.packet.unsent")
_LABELS = {"venue.escalated": "written", "escalation.packet.sent": "SENT", "escalation.packet.unsent": "NOT SENT"}


def escalated_venues(ledger: Ledger, incident_id: str) -> list[str]:
    """Venues of the incident with keys in state ``escalated`` (from the per-state counts)."""
    return [venue for venue, states in ledger.counts(incident_id).items() if states.get(KeyState.ESCALATED.value)]


def packet_lines(ledger: Ledger, incident_id: str, venue: str | None = None, after: int = 0) -> list[str]:
    """The packet events of the incident (of one venue; after event number ``after``), one line each."""
    return [
        f"{event['at']} {event['venue']}: {_LABELS[event['kind']]}: {event['detail']}"
        for event in ledger.events(incident_id)
        if event["kind"] in PACKET_EVENTS and event["n"] > after and (venue is None or event["venue"] == venue)
    ]


async def send_packets(settings: Settings, ledger: Ledger, incident_id: str, venue: str | None) -> list[str]:
    """Write and mail the packets of the escalated venues (or of ``venue``) now; returns the new lines."""
    from activities.escalation import EscalationDesk
    from keyrevoke.mail import mailer_from_settings
    from keyrevoke.signing import load_signing_key
    from workers.runner import packet_settings

    ledger.require_incident(incident_id)
    _, before = ledger.chain_head(incident_id)
    desk = EscalationDesk(ledger, packet_settings(settings), load_signing_key(settings), mailer_from_settings(settings))
    for name in [venue] if venue else escalated_venues(ledger, incident_id):
        await desk.escalate(incident_id, name)
    return packet_lines(ledger, incident_id, venue, after=before)
