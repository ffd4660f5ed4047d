"""Escalation packets: written encrypted from the ledger, signed, and mailed to each exchange's security team.

The activity runs when a venue's batches are done and some of its keys are escalated. It writes the
venue's packet in parts (``packet_keys_per_part`` keys each), each part streamed from the ledger into
``gpg`` and encrypted to the exchange team's OpenPGP key (``<venue>-packet-1-of-1.json.asc``, mode
0600), signs each file with the deployment's Ed25519 key (``.sig`` beside it), and mails each part to the
contact. Each mail's recipient, message id and time go into the event log (``escalation.packet.sent``);
a part whose content was mailed already is not mailed again. A venue without a contact, or a mail that
does not go, gets a clear ``escalation.packet.unsent`` event and log line: its packet waits in its file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity

from keyrevoke.contacts import ExchangeContact, load_contacts
from keyrevoke.errors import ConfigurationError
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.outreach import (
    ESCALATION_UNSENT,
    ESCALATION_WRITTEN,
    count_in_state,
    packet_sent,
    record_packet_sent,
)
from keyrevoke.ledger.store import utc_now
from keyrevoke.mail import Mailer, MailError
from keyrevoke.models import BatchRequest, BatchResult
from keyrevoke.openpgp import Recipient, encrypt_stream, read_recipient
from keyrevoke.packets import PacketHeader, PartStream, part_name
from keyrevoke.repeating import repeating
from keyrevoke.signing import public_key_text
from keyrevoke.states import KeyState
from keyrevoke.venues import display_name
from workflows import options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PacketSettings:
    """What the packets need from the settings (the worker builds it)."""

    platform_name: str
    platform_contact: str
    broker_ids: dict[str, str]
    egress_ips: tuple[str, ...]
    contacts_file: Path
    fallback_key_file: Path | None
    keys_per_part: int
    folder: Path  # <escalation_dir>; packets go to <folder>/<incident>/


@dataclass(frozen=True)
class SealedPart:
    """A part written to disk: its file, what it holds, and its digests."""

    path: Path
    pending: Path  # where it is written first: it replaces ``path`` unless that one was mailed already
    part: int
    parts: int
    keys: int
    content_digest: str  # of the plaintext's keys: the same whenever the same keys are sent
    file_sha256: str


class EscalationDesk:
    """Writes, signs and sends a venue's escalation packet; usable outside an activity too."""

    def __init__(
        self,
        ledger: Ledger,
        settings: PacketSettings,
        signing_key: Ed25519PrivateKey,
        mailer: Mailer | None,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.signing_key = signing_key
        self.mailer = mailer

    async def escalate(self, incident_id: str, venue: str) -> int:
        """Write and send the venue's packet; returns the number of escalated keys in it (0: none)."""
        total = await asyncio.to_thread(count_in_state, self.ledger, incident_id, venue, KeyState.ESCALATED)
        if total == 0:
            return 0
        exchange = display_name(venue)
        contact, recipient, problem = await asyncio.to_thread(self._recipient, venue)
        if recipient is None:
            await self._unsent(
                incident_id,
                venue,
                f"{total} keys escalated to {exchange}; {problem}: no packet written, nobody was sent anything",
            )
            return total
        record = await asyncio.to_thread(self.ledger.require_incident, incident_id)
        header = PacketHeader(
            platform_name=self.settings.platform_name,
            platform_contact=self.settings.platform_contact,
            incident_id=incident_id,
            venue=venue,
            opened_at=record.created_at,
            written_at=utc_now(),
            total_keys=total,
            broker_id=self.settings.broker_ids.get(venue, ""),
            egress_ips=self.settings.egress_ips,
        )
        parts = math.ceil(total / self.settings.keys_per_part)
        written: list[SealedPart] = []
        cursor = 0
        for part in range(1, parts + 1):
            sealed, cursor = await asyncio.to_thread(self._seal_part, header, recipient, part, parts, cursor)
            if sealed is None:
                continue
            earlier = await asyncio.to_thread(packet_sent, self.ledger, incident_id, venue, sealed.content_digest)
            if earlier is not None and sealed.path.is_file():
                # Mailed already: the file on disk stays the one that was sent.
                sealed.pending.unlink(missing_ok=True)
                log.info("%s: packet part %d already mailed to %s (%s)", venue, part, earlier[0], earlier[1])
                continue
            await asyncio.to_thread(self._publish, sealed)
            written.append(sealed)
        if not written:
            return total
        files = ", ".join(str(p.path) for p in written)
        await asyncio.to_thread(
            self.ledger.append_event,
            incident_id,
            "keyrevoke",
            ESCALATION_WRITTEN,
            venue,
            "",
            f"{total} keys escalated to the exchange; packet (encrypted to {recipient.fingerprint}): {files}",
        )
        for sealed in written:
            await self._deliver(incident_id, venue, header, contact, recipient, sealed)
        return total

    # --- the file ------------------------------------------------------------------------------

    def _recipient(self, venue: str) -> tuple[ExchangeContact | None, Recipient | None, str]:
        """The venue's contact and the key its packet is encrypted to, or why there is none."""
        where = str(self.settings.contacts_file)
        try:
            contact = load_contacts(self.settings.contacts_file).get(venue)
        except ConfigurationError as error:
            return None, None, f"the contacts file is unusable ({error})"
        key_file, origin = None, ""
        if contact is not None and contact.public_key_file is not None:
            key_file, origin = contact.public_key_file, f"{where}: {venue}.public_key_file"
        elif self.settings.fallback_key_file is not None:
            key_file, origin = self.settings.fallback_key_file, "KEYREVOKE_PACKET_FALLBACK_KEY_FILE"
        if key_file is None:
            return (
                contact,
                None,
                (f"no OpenPGP key for its security team in {where} and no KEYREVOKE_PACKET_FALLBACK_KEY_FILE"),
            )
        try:
            return contact, read_recipient(key_file, origin), ""
        except ConfigurationError as error:
            return contact, None, str(error)

    def _seal_part(
        self, header: PacketHeader, recipient: Recipient, part: int, parts: int, after_seq: int
    ) -> tuple[SealedPart | None, int]:
        """Stream one part from the ledger into gpg, to a pending file; returns it and the new cursor."""
        stream = PartStream(self.ledger, header, part, parts, after_seq, self.settings.keys_per_part)
        path = self.settings.folder / header.incident_id / part_name(header.venue, part, parts)
        pending = path.with_name(f".{path.name}.pending")
        encrypt_stream(stream.chunks(), recipient, pending)
        if stream.keys == 0:
            pending.unlink(missing_ok=True)
            return None, after_seq
        sealed = SealedPart(path, pending, part, parts, stream.keys, stream.digest, _file_sha256(pending))
        return sealed, stream.last_seq

    def _publish(self, sealed: SealedPart) -> None:
        """Move the pending file into place and sign it (``.sig`` beside it)."""
        sealed.pending.replace(sealed.path)
        signature = self.signing_key.sign(f"sha256:{sealed.file_sha256}".encode())
        signature_file = sealed.path.with_name(sealed.path.name + ".sig")
        signature_file.write_text(
            json.dumps(
                {
                    "signed_file": sealed.path.name,
                    "sha256": sealed.file_sha256,
                    "algorithm": "Ed25519",
                    "signed_text": f"sha256:{sealed.file_sha256}",
                    "signature": base64.b64encode(signature).decode(),
                    "public_key": public_key_text(self.signing_key.public_key()),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )

    # --- the mail ------------------------------------------------------------------------------

    async def _deliver(
        self,
        incident_id: str,
        venue: str,
        header: PacketHeader,
        contact: ExchangeContact | None,
        recipient: Recipient,
        sealed: SealedPart,
    ) -> None:
        where = f"part {sealed.part} of {sealed.parts} ({sealed.keys} keys) in {sealed.path}"
        if contact is None or not contact.address:
            await self._unsent(
                incident_id,
                venue,
                f"{where}; no address for {venue} in {self.settings.contacts_file}: nobody was sent anything",
            )
            return
        if self.mailer is None:
            await self._unsent(incident_id, venue, f"{where}; KEYREVOKE_SMTP_URL is not set: nobody was sent anything")
            return
        message = self._message(header, contact.address, recipient, sealed)
        try:
            await self.mailer.send(message)
        except MailError as error:
            await self._unsent(incident_id, venue, f"{where}; mail to {contact.address} failed: {error}")
            return
        message_id = str(message["Message-ID"])
        await asyncio.to_thread(
            record_packet_sent,
            self.ledger,
            incident_id,
            venue,
            sealed.part,
            sealed.content_digest,
            sealed.path.name,
            contact.address,
            message_id,
            f"part {sealed.part} of {sealed.parts} ({sealed.keys} keys, {sealed.path.name}, sha256 "
            f"{sealed.file_sha256}) mailed to {contact.address}, message id {message_id}",
        )
        log.info("%s: packet part %d mailed to %s, message id %s", venue, sealed.part, contact.address, message_id)

    def _message(self, header: PacketHeader, to: str, recipient: Recipient, sealed: SealedPart) -> EmailMessage:
        exchange = display_name(header.venue)
        message = EmailMessage()
        message["To"] = to
        if self.mailer is not None:
            message["From"] = self.mailer.sender
        message["Subject"] = (
            f"{header.platform_name}: please revoke {sealed.keys} leaked {exchange} API keys "
            f"(incident {header.incident_id}, part {sealed.part} of {sealed.parts})"
        )
        message["Date"] = formatdate(localtime=False)
        # The same part always has the same id: a receiver can tell a repeat (after a crash) apart.
        message["Message-ID"] = _message_id(header, sealed, self.mailer.sender if self.mailer else "")
        public_key = public_key_text(self.signing_key.public_key())
        message.set_content(
            f"{header.request()}\n\n"
            f"The keys are in the attached {sealed.path.name}, encrypted to your team's OpenPGP key "
            f"{recipient.fingerprint}. Part {sealed.part} of {sealed.parts}: {sealed.keys} of the "
            f"{header.total_keys} keys.\n\n"
            f"{sealed.path.name}.sig is our Ed25519 signature over the text sha256:{sealed.file_sha256} "
            f"(the SHA-256 of the attached file). Our public key (urlsafe base64): {public_key}\n\n"
            f"Incident {header.incident_id}, opened {header.opened_at}.\n"
            + (f"Contact: {header.platform_contact}\n" if header.platform_contact else "")
        )
        message.add_attachment(
            sealed.path.read_bytes(), maintype="application", subtype="pgp-encrypted", filename=sealed.path.name
        )
        message.add_attachment(
            sealed.path.with_name(sealed.path.name + ".sig").read_bytes(),
            maintype="application",
            subtype="json",
            filename=sealed.path.name + ".sig",
        )
        return message

    async def _unsent(self, incident_id: str, venue: str, detail: str) -> None:
        log.warning("%s: escalation packet not sent: %s", venue, detail)
        await asyncio.to_thread(
            self.ledger.append_event, incident_id, "keyrevoke", ESCALATION_UNSENT, venue, "", detail
        )


class EscalationActivities:
    """The packet activity, on each venue's task queue."""

    def __init__(self, desk: EscalationDesk) -> None:
        self.desk = desk

    @activity.defn(name=options.WRITE_ESCALATION_PACKET)
    async def write_escalation_packet(self, request: BatchRequest) -> BatchResult:
        """Write, sign and mail the venue's escalation packet; ``ended`` is the number of keys in it."""
        async with repeating(activity.heartbeat, 2.0):
            keys = await self.desk.escalate(request.incident_id, request.venue)
        return BatchResult(ended=keys)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _message_id(header: PacketHeader, sealed: SealedPart, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "keyrevoke"
    local = re.sub(r"[^A-Za-z0-9.-]", "-", f"keyrevoke.{header.incident_id}.{header.venue}.{sealed.part}")
    return f"<{local}.{sealed.content_digest[:24]}@{domain}>"
