"""``keyrevoke check``: can an incident with this scope run as configured? One line per finding.

The same checks run at ``incident start`` before anything is frozen: an error refuses the start,
a warning refuses it unless ``--force`` (an error is never overridden).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from temporalio.client import Client

from commander.situation import queue_service
from keyrevoke.addresses import is_loopback_url
from keyrevoke.errors import ConfigurationError
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.overview import ScopeVenue, scope_preview
from keyrevoke.settings import Settings
from keyrevoke.venues import SUPPORTED_VENUES


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str

    def line(self) -> str:
        return f"{self.level.value}: {self.text}"


@dataclass(frozen=True)
class Preflight:
    findings: list[Finding]
    scope: list[ScopeVenue]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level is Level.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level is Level.WARNING]

    @property
    def keys(self) -> int:
        return sum(v.keys for v in self.scope)


def unknown_venues(venues: Sequence[str]) -> list[str]:
    return [v for v in venues if v.lower() not in SUPPORTED_VENUES]


async def preflight(
    client: Client,
    ledger: Ledger,
    settings: Settings,
    venues: Sequence[str],
    owners: Sequence[str],
    include_handled: bool,
) -> Preflight:
    """Every finding about an incident over ``venues`` (all if empty) and ``owners`` (all if empty)."""
    findings = [
        Finding(Level.OK, f"Temporal answers at {settings.temporal_address} (namespace {settings.temporal_namespace})"),
        Finding(Level.OK, f"the ledger answers ({settings.resolved_ledger_url().split(':')[0]})"),
    ]
    unknown = unknown_venues(venues)
    if unknown:
        findings.append(
            Finding(
                Level.ERROR,
                f"--venue: unknown venue(s) {', '.join(unknown)} (known: {', '.join(SUPPORTED_VENUES)})",
            )
        )
        return Preflight(findings, [])
    scope = await asyncio.to_thread(scope_preview, ledger, venues, owners)
    findings += _scope_findings(scope, venues, owners, include_handled)
    in_scope = [v for v in scope if v.keys or (include_handled and v.handled_before)]
    findings += _master_findings(settings, in_scope)
    findings += _url_findings(settings, in_scope)
    findings += await _worker_findings(client, settings, in_scope)
    return Preflight(findings, scope)


def _scope_findings(
    scope: list[ScopeVenue], venues: Sequence[str], owners: Sequence[str], include_handled: bool
) -> list[Finding]:
    findings = []
    keys = sum(v.keys for v in scope) + (sum(v.handled_before for v in scope) if include_handled else 0)
    handled = sum(v.handled_before for v in scope)
    if not scope:
        filters = []
        if venues:
            filters.append("venue " + ", ".join(venues))
        if owners:
            filters.append(f"{len(owners)} owner(s) of --owners")
        where = " for " + " and ".join(filters) if filters else ""
        findings.append(
            Finding(
                Level.ERROR, f"no key in the ledger{where}: import the inventory first (`keyrevoke inventory import`)"
            )
        )
        return findings
    if keys == 0:
        findings.append(
            Finding(
                Level.ERROR,
                f"all {handled} keys in scope were confirmed dead or closed in earlier incidents: nothing to revoke "
                "(--include-handled revokes them again)",
            )
        )
        return findings
    for venue in scope:
        methods = ", ".join(f"{method} {n}" for method, n in venue.methods.items())
        text = f"{venue.venue}: {venue.keys} keys to revoke" + (f" ({methods})" if methods else "")
        if venue.handled_before:
            verb = "included again (--include-handled)" if include_handled else "left out (--include-handled adds them)"
            text += f"; {venue.handled_before} already confirmed dead or closed in an earlier incident: {verb}"
        findings.append(Finding(Level.OK, text))
    return findings


def _master_findings(settings: Settings, scope: list[ScopeVenue]) -> list[Finding]:
    # Imported here: the adapters load ccxt, which only the preflight and the workers need.
    from activities.venues.registry import ADAPTERS, load_master_credentials

    path = settings.resolved_masters_file()
    if not settings.embedded and not path.exists():
        # A deployment's commander holds no master credentials: the venue workers do, and each one
        # names at its start any venue it lacks them for (its keys would end misconfigured, unsent).
        return [Finding(Level.OK, "master credentials: held by the venue workers, not checked here")]
    try:
        masters = load_master_credentials(path)
    except ConfigurationError as error:
        return [Finding(Level.ERROR, f"master credentials: {error}")]
    findings = []
    for venue in scope:
        adapter = ADAPTERS.get(venue.venue)
        if adapter is None:
            findings.append(Finding(Level.ERROR, f"{venue.venue}: no revocation adapter"))
            continue
        needing = {m: n for m, n in venue.methods.items() if m in adapter.master_methods}
        if not needing:
            continue
        keys = sum(needing.values())
        methods = ", ".join(sorted(needing))
        master = masters.get(venue.venue)
        if master is None:
            findings.append(
                Finding(
                    Level.ERROR,
                    f"{venue.venue}: {keys} keys use method {methods}, which needs the platform's master credentials: "
                    f"none for {venue.venue} in {path} (KEYREVOKE_MASTER_CREDENTIALS_FILE)",
                )
            )
        elif SUPPORTED_VENUES[venue.venue].needs_passphrase and not master.passphrase:
            findings.append(Finding(Level.ERROR, f"{venue.venue}: the master credentials in {path} have no passphrase"))
        else:
            findings.append(Finding(Level.OK, f"{venue.venue}: master credentials for method {methods} ({path})"))
    return findings


def _url_findings(settings: Settings, scope: list[ScopeVenue]) -> list[Finding]:
    if not settings.embedded and not settings.venue_urls and not settings.allow_real_exchanges:
        # Venue URLs are the venue workers' settings; a commander without exchange access has none.
        return [Finding(Level.OK, "venue URLs: the venue workers' settings, not checked here")]
    findings = []
    for venue in scope:
        url = settings.venue_urls.get(venue.venue)
        if url:
            where = "loopback: a simulator" if is_loopback_url(url) else "not loopback: a real host or a proxy"
            findings.append(Finding(Level.OK, f"{venue.venue}: calls {url} ({where})"))
        elif settings.allow_real_exchanges:
            findings.append(
                Finding(
                    Level.OK,
                    f"{venue.venue}: calls the real exchange (no URL in KEYREVOKE_VENUE_URLS; "
                    "KEYREVOKE_ALLOW_REAL_EXCHANGES=true)",
                )
            )
        else:
            findings.append(
                Finding(
                    Level.ERROR,
                    f"{venue.venue}: no URL in KEYREVOKE_VENUE_URLS, so it would call the real exchange: set its URL "
                    "(`keyrevoke sim` prints them) or KEYREVOKE_ALLOW_REAL_EXCHANGES=true",
                )
            )
    return findings


async def _worker_findings(client: Client, settings: Settings, scope: list[ScopeVenue]) -> list[Finding]:
    queues = [(settings.control_queue, "workflow", "the incident's workflows")] + [
        (settings.venue_queue(v.venue), "activity", v.venue) for v in scope
    ]
    services = await asyncio.gather(*(queue_service(client, queue, kind) for queue, kind, _ in queues))
    findings = []
    for (queue, _, what), service in zip(queues, services, strict=True):
        if service.served:
            findings.append(Finding(Level.OK, f"{what}: {service.pollers} worker(s) polling queue {queue}"))
        else:
            findings.append(
                Finding(Level.WARNING, f"{what}: no worker is serving queue {queue}: start `keyrevoke worker`")
            )
    return findings
