"""Owner notices: one message per owner, through the platform hook and by mail where the inventory has an address.

The activity runs on the control queue at the end of a venue's work, and again when escalated keys
are confirmed later. It pages through the venue's keys in plan order; for each owner met, it lists all
their keys in the incident (every venue) and sends the notice unless one with the same content was
sent already (``owner_notices`` table). Each notice sent is an ``owner.notified`` event (who, by which
channel, what in numbers, the message id); a channel that fails is an ``owner.notice.failed`` event
and is tried again at the owner's next notice. No secret is ever in a notice: keys appear by hint.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from temporalio import activity

from activities.platform_hook import HookError, PlatformHook
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.outreach import (
    OwnerKey,
    claim_notice,
    owner_emails,
    owner_keys,
    owner_page,
    record_notice,
    release_notice,
)
from keyrevoke.mail import Mailer, MailError
from keyrevoke.models import OwnerNoticeRequest
from keyrevoke.owner_notices import OwnerNotice, compose
from keyrevoke.repeating import repeating
from workflows import options

log = logging.getLogger(__name__)

PAGE = 200  # keys read per page: their owners' notices go out together
SENDING_AT_ONCE = 8  # owners whose notices are in flight at once
# A claim older than this whose notice was never recorded as sent belonged to a sender that died: a
# retried attempt (after the 60 s heartbeat timeout) takes it over. A repeat reaches the platform with
# the same idempotency key and the mail with the same Message-ID.
CLAIM_STALE_SECONDS = 45.0


@dataclass(frozen=True)
class NoticeSettings:
    platform_name: str
    manage_urls: dict[str, str]


@dataclass
class NoticeCounts:
    sent: int = 0
    unchanged: int = 0
    failed: int = 0


class OwnerNoticeDesk:
    """Composes and sends owner notices from the ledger; usable outside an activity too."""

    def __init__(self, ledger: Ledger, hook: PlatformHook, mailer: Mailer | None, settings: NoticeSettings) -> None:
        self.ledger = ledger
        self.hook = hook
        self.mailer = mailer
        self.settings = settings

    async def notify(self, incident_id: str, venue: str) -> NoticeCounts:
        """Tell every owner with keys at ``venue`` where all their keys stand (each once per change)."""
        counts = NoticeCounts()
        gate = asyncio.Semaphore(SENDING_AT_ONCE)
        cursor = 0
        while True:
            # An owner met again on a later page finds their notice sent already (same digest): nothing
            # is kept across pages, so the round's memory is one page whatever the number of owners.
            owners, cursor = await asyncio.to_thread(owner_page, self.ledger, incident_id, venue, cursor, PAGE)
            if not owners:
                return counts
            keys = await asyncio.to_thread(owner_keys, self.ledger, incident_id, owners)
            emails = await asyncio.to_thread(owner_emails, self.ledger, owners) if self.mailer else {}

            async def one(owner: str, keys: list[OwnerKey], email: str) -> str:
                async with gate:
                    notice = compose(incident_id, owner, keys, self.settings.platform_name, self.settings.manage_urls)
                    return await self._tell(notice, venue, email)

            for outcome in await asyncio.gather(
                *(one(owner, keys.get(owner, []), emails.get(owner, "")) for owner in owners)
            ):
                counts.sent += outcome == "sent"
                counts.unchanged += outcome == "unchanged"
                counts.failed += outcome == "failed"

    async def _tell(self, notice: OwnerNotice, venue: str, email: str) -> str:
        """Send one owner's notice by every channel; returns ``sent``, ``unchanged`` or ``failed``."""
        if not notice.lines:
            return "unchanged"
        claimed = await asyncio.to_thread(
            claim_notice, self.ledger, notice.incident_id, notice.owner, notice.digest, CLAIM_STALE_SECONDS
        )
        if not claimed:
            return "unchanged"
        told: list[str] = []
        failures: list[str] = []
        try:
            await self.hook.send_owner_notice(notice)
            told.append("platform hook")
        except HookError as error:
            failures.append(f"platform hook: {error}")
        if email and self.mailer is not None:
            message = self._message(notice, email)
            try:
                await self.mailer.send(message)
                # The address stays out of the event log (and so out of the evidence report).
                told.append(f"mail to the address on file (message id {message['Message-ID']})")
            except MailError as error:
                failures.append(f"mail to the address on file: {str(error).replace(email, '<owner address>')}")
        if failures:
            detail = f"owner {notice.owner}: " + "; ".join(failures)
            log.warning("owner notice not delivered: %s", detail)
            await asyncio.to_thread(
                self.ledger.append_event, notice.incident_id, "keyrevoke", "owner.notice.failed", venue, "", detail
            )
        if not told:
            await asyncio.to_thread(release_notice, self.ledger, notice.incident_id, notice.owner, notice.digest)
            return "failed"
        await asyncio.to_thread(
            record_notice,
            self.ledger,
            notice.incident_id,
            notice.owner,
            notice.digest,
            ", ".join(told),
            venue,
            f"owner {notice.owner} told by {' and '.join(told)}: {notice.summary()}",
        )
        return "sent"

    def _message(self, notice: OwnerNotice, to: str) -> EmailMessage:
        assert self.mailer is not None
        message = EmailMessage()
        message["To"] = to
        message["From"] = self.mailer.sender
        message["Subject"] = notice.subject
        message["Date"] = formatdate(localtime=False)
        domain = self.mailer.sender.rpartition("@")[2] or "keyrevoke"
        local = re.sub(r"[^A-Za-z0-9.-]", "-", f"keyrevoke.notice.{notice.incident_id}.{notice.owner}")
        message["Message-ID"] = f"<{local}.{notice.digest[:24]}@{domain}>"
        message.set_content(notice.text())
        return message


class OwnerNoticeActivities:
    """The owner-notice activity, on the control queue."""

    def __init__(self, desk: OwnerNoticeDesk) -> None:
        self.desk = desk

    @activity.defn(name=options.NOTIFY_OWNERS)
    async def notify_owners(self, request: OwnerNoticeRequest) -> int:
        """Send each owner with keys at the venue one notice listing all their keys; returns how many were sent."""
        async with repeating(activity.heartbeat, 5.0):
            counts = await self.desk.notify(request.incident_id, request.venue)
        activity.logger.info(
            "%s: owner notices: %d sent, %d unchanged, %d not delivered",
            request.venue,
            counts.sent,
            counts.unchanged,
            counts.failed,
        )
        return counts.sent
