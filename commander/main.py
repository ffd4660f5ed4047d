"""``keyrevoke``: the incident commander's command line.

Every verb reads its settings from ``KEYREVOKE_*`` environment variables (see ``keyrevoke.settings``);
errors are printed as one line naming the problem and where it is, with exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from commander import exit_codes
from keyrevoke.errors import ConfigurationError, InputError, KeyrevokeError, ServiceUnreachable
from keyrevoke.errors import InputError as KeyrevokeInputError
from keyrevoke.safe_text import terminal_text
from keyrevoke.settings import Settings

if TYPE_CHECKING:
    from keyrevoke.ledger.store import Ledger

EXIT_INPUT = exit_codes.REFUSED

# Verbs import what they need inside their function: `keyrevoke --help` and the light verbs stay fast
# without loading ccxt and the Temporal SDK.


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "state_dir", None):
        overrides["state_dir"] = Path(args.state_dir)
    return Settings(**overrides)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so that servers and workers shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# --- inventory --------------------------------------------------------------------------------


async def cmd_inventory_import(args: argparse.Namespace) -> int:
    from commander.inventory_import import import_inventory
    from keyrevoke.ledger.setup import ledger_from_settings
    from keyrevoke.safe_text import terminal_text

    ledger = ledger_from_settings(_settings(args))
    try:
        result = await asyncio.to_thread(import_inventory, ledger, Path(args.file))
    finally:
        ledger.close()
    for error in result.errors:
        print(terminal_text(f"error: {error}"), file=sys.stderr)
    print(f"{result.added} added, {result.unchanged} unchanged, {len(result.errors)} rejected")
    return 1 if result.errors else 0


async def cmd_inventory_show(args: argparse.Namespace) -> int:
    from keyrevoke.ledger.setup import ledger_from_settings

    ledger = ledger_from_settings(_settings(args))
    try:
        keys = ledger.list_keys(args.venue)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    from keyrevoke.safe_text import terminal_text

    print(f"{'key_id':<20} {'venue':<10} {'owner':<16} {'method':<7} {'prio':>5}  fingerprint              key")
    for key in keys:
        # Inventory text is the platform's data, not ours: shown, never obeyed by the terminal.
        shown = {name: terminal_text(value) for name, value in key.items()}
        print(
            f"{shown['key_id']:<20} {shown['venue']:<10} {shown['owner']:<16} {shown['method']:<7}"
            f" {shown['priority']:>5}  {shown['fingerprint']:<24} {shown['key_hint']}"
        )
    print(f"{len(keys)} keys")
    return 0


async def cmd_ledger_rekey(args: argparse.Namespace) -> int:
    from keyrevoke.crypto import SecretBox, load_kek
    from keyrevoke.ledger.setup import ledger_from_settings

    settings = _settings(args)
    new_file = Path(args.new_kek_file)
    if not args.generate and not await asyncio.to_thread(new_file.exists):
        raise ConfigurationError(f"{new_file}: no such key file (add --generate to make a new key there)")
    new_kek = load_kek(None, new_file, create=args.generate, env_name="--new-kek-file")
    ledger = ledger_from_settings(settings)
    try:
        if new_kek.key_id == ledger.box.current.key_id:
            raise ConfigurationError("the new key-encryption key is the one in use: nothing to do")
        count = await asyncio.to_thread(ledger.rekey, SecretBox(new_kek))
    finally:
        ledger.close()
    print(f"{count} keys re-sealed under key-encryption key {new_kek.key_id}")
    print(f"now set KEYREVOKE_LEDGER_KEK_FILE={new_file} (and remove the old key once backups are re-made)")
    return 0


# --- incidents --------------------------------------------------------------------------------


def _signature(args: argparse.Namespace) -> Any:
    """The action signed outside keyrevoke (``--signature FILE``, ``--message FILE``), if given."""
    from keyrevoke.operators import read_signed_action

    if not getattr(args, "signature", None):
        if getattr(args, "message", None):
            raise KeyrevokeInputError("--message goes with --signature (the signature of that message)")
        return None
    return read_signed_action(Path(args.signature), Path(args.message) if args.message else None)


def _write_message(path: Path, message: str, again: str) -> int:
    """``--write-message FILE``: the message to sign with ssh-keygen, and how to send it once signed."""
    try:
        path.write_text(message, encoding="utf-8")
    except OSError as error:
        raise KeyrevokeInputError(f"{path}: cannot write the message ({error.strerror})") from None
    print(path)
    print(f"sign it: ssh-keygen -Y sign -n keyrevoke -f YOUR_KEY {path}", file=sys.stderr)
    print(f"then, within the signature's lifetime: {again} --signature {path}.sig", file=sys.stderr)
    return 0


def _err(line: str) -> None:
    for part in line.split("\n"):
        print(terminal_text(part), file=sys.stderr, flush=True)


def _print_lines(lines: Sequence[str]) -> None:
    """Lines of a view on stdout; venue answers and inventory text in them are shown, never obeyed."""
    for line in lines:
        print(terminal_text(line))


async def cmd_check(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal, open_ledger
    from commander.incidents import read_owners
    from commander.preflight import preflight

    settings = _settings(args)
    owners = read_owners(Path(args.owners)) if args.owners else []
    client = await connect_temporal(settings)
    ledger = open_ledger(settings)
    try:
        report = await preflight(client, ledger, settings, args.venue or [], owners, args.include_handled)
    finally:
        ledger.close()
    for finding in report.findings:
        print(terminal_text(finding.line()))
    if report.errors or report.warnings:
        print(f"not ready: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
        return exit_codes.REFUSED
    print(f"ready: an incident would revoke {report.keys} keys")
    return exit_codes.OK


async def cmd_incident_start(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal, open_ledger
    from commander.incidents import follow, new_incident_id, read_owners, signed_start, start_incident, start_message
    from commander.preflight import preflight
    from commander.situation import summary_lines

    settings = _settings(args)
    owners = read_owners(Path(args.owners)) if args.owners else []
    incident_id = args.id or new_incident_id()
    if args.write_message:
        message = start_message(incident_id, args.venue or [], owners, args.require_approval)
        return _write_message(Path(args.write_message), message, f"keyrevoke incident start --id {incident_id} ...")
    # Signed and checked before anything else: a refused start records nothing and needs no server.
    signed, _ = await asyncio.to_thread(
        signed_start, settings, incident_id, args.venue or [], owners, args.require_approval, _signature(args)
    )
    client = await connect_temporal(settings)
    ledger = open_ledger(settings)
    try:
        joining = args.id is not None and await asyncio.to_thread(ledger.get_incident, incident_id) is not None
        if not joining:
            report = await preflight(client, ledger, settings, args.venue or [], owners, args.include_handled)
            for finding in report.findings:
                _err(finding.line())
            if report.errors:
                _err(f"keyrevoke: refused: {len(report.errors)} error(s) above; nothing was started")
                return exit_codes.REFUSED
            if report.warnings and not args.force:
                _err(
                    f"keyrevoke: refused: {len(report.warnings)} warning(s) above; fix them, or start anyway "
                    "with --force"
                )
                return exit_codes.REFUSED
            handled = sum(v.handled_before for v in report.scope)
            keys = report.keys + (handled if args.include_handled else 0)
            left_out = "" if args.include_handled or not handled else f"; {handled} already handled left out"
            _err(f"plan: {keys} keys at {sum(1 for v in report.scope if v.keys)} venue(s){left_out}")
        outcome = await start_incident(
            client,
            ledger,
            settings,
            incident_id,
            args.venue or [],
            owners,
            args.require_approval,
            signed,
            include_handled=args.include_handled,
        )
        print(outcome.incident_id, flush=True)
        if not outcome.new:
            _err(f"incident {incident_id} was already started: joined it")
        if args.require_approval:
            await _show_plan(client, incident_id)
        if args.watch:
            view = await follow(client, ledger, settings, incident_id)
            _print_lines(summary_lines(view, settings))
            return view.exit_code
    finally:
        ledger.close()
    return exit_codes.OK


async def _show_plan(client: Any, incident_id: str) -> None:
    """Print the plan once the incident has made it, for the approver to read."""
    from commander.incidents import incident_state

    for _ in range(120):
        state = await incident_state(client, incident_id)
        if state is not None and state.plan is not None:
            lines = [f"  {v.venue}: {v.keys} keys" for v in state.plan.venues]
            _err(f"plan of incident {incident_id} ({state.plan.total_keys} keys):")
            _err("\n".join(lines))
            _err(f"waiting for approval: keyrevoke incident approve {incident_id} (by another person)")
            return
        await asyncio.sleep(0.5)
    _err("the plan is not ready yet: see `keyrevoke incident status`")


async def cmd_incident_control(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal, open_ledger
    from commander.incidents import control_on_record, operator_identity, sign_request
    from keyrevoke.models import ControlRequest
    from keyrevoke.operators import action_message

    settings = _settings(args)
    venue = (getattr(args, "venue", None) or "").lower()
    reason = getattr(args, "reason", None) or ""
    if args.write_message:
        message = action_message(args.id, args.action, venue, reason)
        return _write_message(Path(args.write_message), message, f"keyrevoke incident {args.action} {args.id} ...")
    unsigned = ControlRequest(operator_identity(settings), venue, reason, _signature(args))
    # Signed before any server is asked: a key that cannot sign needs no Temporal to say so.
    request = await asyncio.to_thread(sign_request, settings, args.id, args.action, unsigned)
    client = await connect_temporal(settings)
    ledger = open_ledger(settings)
    try:
        print(terminal_text(await control_on_record(client, ledger, settings, args.id, args.action, request)))
    finally:
        ledger.close()
    return exit_codes.OK


async def cmd_incident_confirm(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal, open_ledger
    from commander.incidents import control_on_record, operator_identity, read_owners, sign_request
    from keyrevoke.models import ConfirmRequest
    from keyrevoke.operators import ActionRefused, action_message

    settings = _settings(args)
    # A key file has one key_id per line, like an owners file.
    key_ids = tuple(read_owners(Path(args.keys), "key list")) if args.keys else ()
    venue = args.venue.lower()
    if args.write_message:
        message = action_message(args.id, "confirm", venue, "", key_ids)
        return _write_message(Path(args.write_message), message, f"keyrevoke incident confirm {args.id} ...")
    unsigned = ConfirmRequest(operator_identity(settings), venue, key_ids, _signature(args))
    request = await asyncio.to_thread(sign_request, settings, args.id, "confirm", unsigned)
    client = await connect_temporal(settings)
    ledger = open_ledger(settings)
    try:
        try:
            answer = await control_on_record(client, ledger, settings, args.id, "confirm", request)
        except ActionRefused:
            raise  # the signature or operator is wrong: said as it is, whatever the keys' states
        except InputError:
            settled = None if key_ids else await asyncio.to_thread(_venue_settled, ledger, args.id, venue)
            if settled is None:
                raise
            # keyrevoke's own re-check of the escalated keys saw them dead before this confirm came:
            # what the commander asks for holds already, so it is no failure.
            answer = f"{venue}: nothing to confirm: {settled}"
        print(terminal_text(answer))
    finally:
        ledger.close()
    return exit_codes.OK


def _venue_settled(ledger: Ledger, incident_id: str, venue: str) -> str | None:
    """Why a whole-venue confirm has nothing to do: the venue escalated keys, and every one of its keys
    is dead or closed already."""
    from keyrevoke.ledger.outreach import escalation_happened
    from keyrevoke.states import Measures

    counts = ledger.counts(incident_id).get(venue)
    if not counts or not escalation_happened(ledger, incident_id, venue):
        return None
    measures = Measures.from_counts(counts)
    if not measures.safe:
        return None
    return f"all {measures.total} of its keys are confirmed dead or closed already"


async def cmd_incident_status(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal, open_ledger
    from commander.incidents import follow
    from commander.progress import view_lines, view_table
    from commander.situation import incident_view, summary_lines

    settings = _settings(args)
    ledger = open_ledger(settings)
    try:
        await asyncio.to_thread(ledger.require_incident, args.id)
        client = await connect_temporal(settings)
        if args.watch and not args.json:
            view = await follow(client, ledger, settings, args.id)
        else:
            view = await incident_view(client, ledger, settings, args.id)
            while args.watch and view.workflow_status == "running":
                await asyncio.sleep(1.0)
                view = await incident_view(client, ledger, settings, args.id)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(view.to_json(), indent=2))
        return view.exit_code
    if not args.watch:
        from rich.console import Console

        console = Console()
        if console.is_terminal:
            console.print(view_table(view))
        else:
            _print_lines(view_lines(view))
    _print_lines(summary_lines(view, settings))
    return view.exit_code


async def cmd_incident_list(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal, open_ledger
    from commander.situation import describe_workflow, status_name
    from keyrevoke.ledger.overview import list_incidents
    from keyrevoke.states import Measures
    from workflows.incident import incident_workflow_id

    settings = _settings(args)
    ledger = open_ledger(settings)
    try:
        incidents = await asyncio.to_thread(list_incidents, ledger, args.limit)
    finally:
        ledger.close()
    client = await connect_temporal(settings)
    statuses = await asyncio.gather(
        *(describe_workflow(client, incident_workflow_id(i.incident_id)) for i in incidents)
    )
    rows: list[dict[str, Any]] = []
    for incident, description in zip(incidents, statuses, strict=True):
        m = Measures.from_counts(incident.counts)
        rows.append(
            {
                "incident_id": incident.incident_id,
                "workflow": status_name(description),
                "started": incident.created_at,
                "started_by": incident.created_by,
                "keys": m.total,
                "finished_ratio": round(m.finished_ratio, 4),
                "may_still_work": m.may_still_work,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return exit_codes.OK
    width = max([len("incident"), *(len(r["incident_id"]) for r in rows)])
    print(f"{'incident':<{width}}  {'workflow':<10} {'started':<24} {'keys':>7} {'finished':>8} {'may still work':>14}")
    for r in rows:
        print(
            terminal_text(
                f"{r['incident_id']:<{width}}  {r['workflow']:<10} {r['started']:<24} {r['keys']:>7}"
                f" {r['finished_ratio']:>8.0%} {r['may_still_work']:>14}"
            )
        )
    print(
        f"{len(rows)} incident(s)"
        + (f" (the {args.limit} latest: --limit shows more)" if len(rows) == args.limit else "")
    )
    return exit_codes.OK


def _key_state(value: str | None) -> Any:
    from keyrevoke.states import KeyState

    if value is None:
        return None
    try:
        return KeyState(value)
    except ValueError:
        raise InputError(f"--state: unknown state {value!r} (known: {', '.join(s.value for s in KeyState)})") from None


async def cmd_incident_keys(args: argparse.Namespace) -> int:
    from commander.connection import open_ledger
    from keyrevoke.ledger.overview import page_keys

    settings = _settings(args)
    state = _key_state(args.state)
    ledger = open_ledger(settings)
    try:
        await asyncio.to_thread(ledger.require_incident, args.id)
        count = 0
        if not args.json:
            print(f"{'key_id':<20} {'venue':<9} {'state':<13} {'key':<12} {'owner':<16} {'fingerprint':<24} last error")
        for key in page_keys(ledger, args.id, state, args.venue):
            count += 1
            if args.json:
                print(json.dumps(dataclasses.asdict(key)))
            else:
                detail = " ".join(key.detail.split())
                print(
                    terminal_text(
                        f"{key.key_id:<20} {key.venue:<9} {key.state:<13} {key.key_hint:<12} {key.owner:<16}"
                        f" {key.fingerprint:<24} {detail}"
                    )
                )
    finally:
        ledger.close()
    if not args.json:
        print(f"{count} keys")
    return exit_codes.OK


async def cmd_incident_close(args: argparse.Namespace) -> int:
    from commander.connection import open_ledger
    from commander.incidents import read_owners
    from keyrevoke.ledger.overview import close_keys, key_ids_in
    from keyrevoke.operators import action_message

    settings = _settings(args)
    state = _key_state(args.state)
    if bool(args.keys) == bool(state):
        raise InputError("name the keys to close: --keys FILE, or --state STATE (with --venue to narrow)")
    venue = (args.venue or "").lower()
    ledger = open_ledger(settings)
    try:
        await asyncio.to_thread(ledger.require_incident, args.id)
        if args.keys:
            key_ids = read_owners(Path(args.keys), "key list")
        else:
            key_ids = await asyncio.to_thread(key_ids_in, ledger, args.id, state, args.venue)
            if not key_ids:
                raise InputError(
                    f"incident {args.id} has no {state.value} keys" + (f" at {args.venue}" if args.venue else "")
                )
        if args.write_message:
            message = action_message(args.id, "close", venue, args.reason, key_ids)
            return _write_message(Path(args.write_message), message, f"keyrevoke incident close {args.id} ...")
        # No workflow acts on a close: the signature is checked here, against the registered operators,
        # before anything is written, and the event log names the key that decided.
        operator = await asyncio.to_thread(_signed_close, settings, args, venue, key_ids)
        done = await asyncio.to_thread(close_keys, ledger, args.id, key_ids, operator.actor, args.reason)
    finally:
        ledger.close()
    line = f"{done.closed} keys closed by {operator.actor}: {args.reason}"
    if done.already_handled:
        line += f"; {done.already_handled} were confirmed or closed already (unchanged)"
    print(terminal_text(line))
    return exit_codes.OK


def _signed_close(settings: Settings, args: argparse.Namespace, venue: str, key_ids: Sequence[str]) -> Any:
    """The registered operator who signed this close (with the CLI's key, or ``--signature``)."""
    from datetime import timedelta

    from keyrevoke.models import VerifyActionRequest
    from keyrevoke.operators import operators_for, sign_action, verify_action

    signed = _signature(args) or sign_action(settings, args.id, "close", venue, args.reason, key_ids)
    request = VerifyActionRequest.of(args.id, "close", signed, venue, args.reason, key_ids)
    age = timedelta(seconds=settings.operator_signature_max_age_seconds)
    try:
        return verify_action(operators_for(settings), request, age)
    except InputError as error:
        raise InputError(f"incident {args.id}: close refused: {error}") from None


async def cmd_incident_report(args: argparse.Namespace) -> int:
    from commander.connection import open_ledger
    from keyrevoke.report import write_report
    from keyrevoke.signing import load_signing_key

    settings = _settings(args)
    signing_key = load_signing_key(settings)
    ledger = open_ledger(settings)
    try:
        # Checked before anything is written: an unknown incident leaves no empty folder behind.
        await asyncio.to_thread(ledger.require_incident, args.id)
        out = Path(args.out) if args.out else settings.state_dir / "reports" / args.id
        report = await asyncio.to_thread(write_report, ledger, args.id, out, signing_key)
    finally:
        ledger.close()
    for path in report.paths():
        print(path)
    return exit_codes.OK


async def cmd_incident_packets(args: argparse.Namespace) -> int:
    from commander.connection import open_ledger
    from commander.packets import packet_lines, send_packets

    settings = _settings(args)
    ledger = open_ledger(settings)
    try:
        ledger.require_incident(args.id)
        if args.send:
            lines = await send_packets(settings, ledger, args.id, args.venue)
        else:
            lines = packet_lines(ledger, args.id, args.venue)
    finally:
        ledger.close()
    if not lines:
        lines = [
            "nothing written now: every part of these packets was mailed already"
            if args.send
            else "no escalation packet in this incident (no key was escalated, or its venue is still working)"
        ]
    for line in lines:
        print(line)
    return 0


async def cmd_incident_verify_report(args: argparse.Namespace) -> int:
    from keyrevoke.report_check import verify_report
    from keyrevoke.safe_text import terminal_text

    path = Path(args.file)
    public_key = None if args.no_signature else _public_key(args)
    anchor = await _temporal_anchor(args, path) if args.temporal else None
    check = await asyncio.to_thread(
        verify_report, path, public_key, signature=Path(args.signature) if args.signature else None, anchor=anchor
    )
    signed = (
        f"signature verifies ({', '.join(check.files_signed)}) with key {check.signed_by}"
        if check.signed_by
        else "signature NOT checked (--no-signature)"
    )
    anchored = f"; its chain head matches {anchor.where}" if anchor else ""
    print(
        terminal_text(
            f"{path}: holds: {signed}; the event chain of {check.events} events holds{anchored}; "
            f"the {check.keys} keys and the totals follow from the events; {check.may_still_work} may still work"
        )
    )
    return 0


def _public_key(args: argparse.Namespace) -> Any:
    from keyrevoke.signing import public_key_from_text

    given = args.public_key
    if not given:
        raise InputError(
            "give --public-key PUB (`keyrevoke signing-key public` prints it), or --no-signature to check "
            "the rest without the signature"
        )
    text = given
    candidate = Path(given)
    if candidate.is_file():
        try:
            with candidate.open("rb") as handle:
                text = handle.read(4096).decode("ascii")
        except (OSError, UnicodeDecodeError):
            raise InputError(f"--public-key {given}: cannot read it as a public key file") from None
    try:
        return public_key_from_text(text, f"--public-key {candidate.name if candidate.is_file() else '(text)'}")
    except ValueError as error:
        raise InputError(str(error)) from None


async def _temporal_anchor(args: argparse.Namespace, path: Path) -> Any:
    """The chain head the incident workflow returned: Temporal's copy, outside the ledger."""
    from commander.connection import connect_temporal
    from commander.incidents import recorded_chain_head
    from keyrevoke.report_check import ChainAnchor, read_incident_id

    incident_id = await asyncio.to_thread(read_incident_id, path)
    client = await connect_temporal(_settings(args))
    length, head = await recorded_chain_head(client, incident_id)
    return ChainAnchor(length, head, f"the incident workflow's result in Temporal ({length} events)")


async def cmd_signing_key_public(args: argparse.Namespace) -> int:
    from keyrevoke.signing import load_signing_key, public_key_text

    print(public_key_text(load_signing_key(_settings(args)).public_key()))
    return 0


# --- processes --------------------------------------------------------------------------------


async def cmd_worker(args: argparse.Namespace) -> int:
    from commander.connection import connect_temporal
    from workers.runner import parse_queues, process_observability, run_workers

    settings = _settings(args)
    queues = parse_queues(args.queues)
    stop = _stop_on_signals()
    # Connected on the runtime that reports the SDK's metrics, so the workers need no second connection.
    observability = process_observability(settings)
    client = await connect_temporal(settings, observability.temporal_runtime() if observability else None)
    await run_workers(client, settings, queues, stop)
    return 0


async def cmd_dev_server(args: argparse.Namespace) -> int:
    from commander.devserver import DevServerConfig, dev_server

    settings = _settings(args)
    db_file = Path(args.db) if args.db else settings.state_dir / "temporal.db"
    config = DevServerConfig(args.port, db_file=db_file, ui_port=args.ui_port, log_file=None)
    stop = _stop_on_signals()
    async with dev_server(config, settings):
        print(f"temporal dev server on {config.address}, database {db_file}", flush=True)
        if args.ui_port:
            print(f"web UI on http://127.0.0.1:{args.ui_port}", flush=True)
        await stop.wait()
    return 0


async def cmd_sim(args: argparse.Namespace) -> int:
    from commander.simulate import ensure_sim_masters, load_scenario, simulator_for

    settings = _settings(args)
    masters = Path(args.masters) if args.masters else settings.resolved_masters_file()
    load_scenario(Path(args.scenario) if args.scenario else None)  # a bad scenario is named before anything is written
    written = ensure_sim_masters(masters, Path(args.inventory))
    if written is not None:
        print(
            f"no master credentials file: wrote simulated ones for {', '.join(written) or 'no venue'} to {masters}"
            " (they work with this simulator only)",
            file=sys.stderr,
        )
    simulator, skipped = simulator_for(
        Path(args.inventory), masters, Path(args.scenario) if args.scenario else None, args.port
    )
    if skipped:
        print(f"{skipped} invalid inventory rows skipped (see `keyrevoke inventory import`)", file=sys.stderr)
    stop = _stop_on_signals()
    await simulator.start()
    try:
        for venue, url in simulator.venue_urls.items():
            print(f"{venue} {url}", flush=True)
        print(f"KEYREVOKE_VENUE_URLS='{json.dumps(simulator.venue_urls)}'", flush=True)
        await stop.wait()
    finally:
        await simulator.stop()
    return 0


async def cmd_codec_server(args: argparse.Namespace) -> int:
    from commander.codec_server import run_codec_server

    stop = _stop_on_signals()
    await run_codec_server(_settings(args), stop)
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from commander.demo import run_demo

    return await run_demo(_settings(args), args.keys, Path(args.scenario) if args.scenario else None)


# --- parser -----------------------------------------------------------------------------------


def _signing_options(sub: argparse.ArgumentParser) -> None:
    """How an action is signed: by default with KEYREVOKE_OPERATOR_KEY_FILE; or by ssh-keygen, in two steps."""
    sub.add_argument(
        "--write-message", metavar="FILE", help="write the message to sign with `ssh-keygen -Y sign -n keyrevoke`"
    )
    sub.add_argument("--signature", metavar="FILE", help="the ssh-keygen signature of the message (FILE.sig)")
    sub.add_argument("--message", metavar="FILE", help="the signed message (default: the signature's name less .sig)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keyrevoke")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyrevoke",
        description="Revoke leaked exchange API keys, provably.",
        epilog="exit codes: 0 done and every key confirmed dead or closed; 2 refused (bad input, preflight); "
        "3 ended but keys may still work; 4 still running or no worker acted; 5 Temporal or the ledger "
        "unreachable; 130 interrupted",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the workers do")
    parser.add_argument("--version", action="version", version=f"keyrevoke {_version()}", help="print the version")
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(
        group: Any,
        name: str,
        handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--state-dir", help="state directory (default: $KEYREVOKE_STATE_DIR or .state)")
        sub.set_defaults(handler=handler)
        return sub

    def scope_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--venue", action="append", help="only this venue (repeatable; default: every venue)")
        sub.add_argument("--owners", help="file with one owner per line: only their keys")
        sub.add_argument(
            "--include-handled",
            action="store_true",
            help="also revoke keys an earlier incident confirmed dead or a person closed (left out by default)",
        )

    inventory = verbs.add_parser("inventory", help="the inventory of keys").add_subparsers(dest="action", required=True)
    sub = verb(inventory, "import", cmd_inventory_import, "import a CSV or JSONL inventory into the ledger")
    sub.add_argument("file", help="the inventory file (.csv or .jsonl)")
    sub = verb(inventory, "show", cmd_inventory_show, "list the ledger's keys by fingerprint")
    sub.add_argument("--venue", help="only this venue's keys")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ledger_verbs = verbs.add_parser("ledger", help="the ledger itself").add_subparsers(dest="action", required=True)
    sub = verb(ledger_verbs, "rekey", cmd_ledger_rekey, "re-seal every secret under a new key-encryption key")
    sub.add_argument("--new-kek-file", required=True, help="file with the new key (urlsafe base64 of 32 bytes)")
    sub.add_argument("--generate", action="store_true", help="make a new key in that file if it does not exist")

    sub = verb(
        verbs, "check", cmd_check, "preflight: can an incident with this scope run as configured? (exit 0 if so)"
    )
    scope_options(sub)

    incident = verbs.add_parser("incident", help="mass revokes").add_subparsers(dest="action", required=True)
    sub = verb(
        incident, "start", cmd_incident_start, "check, show the plan, start (or join) a mass revoke; prints its id"
    )
    sub.add_argument("--id", help="incident id (default: a new one); the same id joins the same incident")
    scope_options(sub)
    sub.add_argument("--watch", action="store_true", help="follow progress until the incident ends; exit as `status`")
    sub.add_argument(
        "--require-approval", action="store_true", help="plan, show the plan, and wait for another person's approval"
    )
    sub.add_argument("--force", action="store_true", help="start despite preflight warnings (never despite errors)")
    _signing_options(sub)
    for action, help_text, venue_help in (
        ("pause", "hold new work, at one venue or everywhere", "only this venue"),
        ("resume", "release a pause", "only this venue"),
        ("cancel", "stop: revoke nothing more, hand back keys not yet revoked", None),
        ("narrow", "take one venue out of the incident (its keys not yet revoked are handed back)", "the venue"),
        ("approve", "approve a planned incident (a second person)", None),
    ):
        sub = verb(incident, action, cmd_incident_control, help_text)
        sub.set_defaults(action=action)
        sub.add_argument("id", help="the incident id")
        if venue_help:
            sub.add_argument("--venue", required=action == "narrow", help=venue_help)
        sub.add_argument("--reason", help="why: goes into the event log")
        _signing_options(sub)
    sub = verb(incident, "confirm", cmd_incident_confirm, "the exchange revoked a venue's escalated keys in bulk")
    sub.add_argument("id", help="the incident id")
    sub.add_argument("--venue", required=True, help="the venue whose exchange confirmed the revokes")
    sub.add_argument("--keys", help="file with one key_id per line (default: every escalated key of the venue)")
    _signing_options(sub)
    sub = verb(incident, "status", cmd_incident_status, "keys by state per venue, what stops them, what to do next")
    sub.add_argument("id", help="the incident id")
    sub.add_argument("--watch", action="store_true", help="live view until the incident ends")
    sub.add_argument("--json", action="store_true", help="print the view as JSON")
    sub = verb(incident, "list", cmd_incident_list, "the latest incidents: status, start, keys, may still work")
    sub.add_argument("--limit", type=int, default=50, help="how many incidents, newest first (default 50)")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = verb(incident, "keys", cmd_incident_keys, "an incident's keys with state and last error, for who must act")
    sub.add_argument("id", help="the incident id")
    sub.add_argument("--state", help="only keys in this state (e.g. live, escalated, failed)")
    sub.add_argument("--venue", help="only this venue's keys")
    sub.add_argument("--json", action="store_true", help="one JSON object per key and line")
    sub = verb(
        incident, "close", cmd_incident_close, "a person closes keys that may still work (say, the owner deleted them)"
    )
    sub.add_argument("id", help="the incident id")
    sub.add_argument("--keys", help="file with one key_id per line")
    sub.add_argument("--state", help="close every key in this state (instead of --keys)")
    sub.add_argument("--venue", help="with --state: only this venue's keys")
    sub.add_argument("--reason", required=True, help="why they no longer work: goes into the event log")
    _signing_options(sub)
    sub = verb(incident, "report", cmd_incident_report, "write the evidence report (JSON, CSV and HTML)")
    sub.add_argument("id", help="the incident id")
    sub.add_argument("--out", help="folder for report.json, report.csv and report.html")
    sub = verb(incident, "packets", cmd_incident_packets, "escalation packets: which were mailed, which not and why")
    sub.add_argument("id", help="the incident id")
    sub.add_argument("--venue", help="only this venue")
    sub.add_argument("--send", action="store_true", help="write and mail them now (a part already mailed is not)")
    sub = verb(
        incident,
        "verify-report",
        cmd_incident_verify_report,
        "check a report: its signature, its event chain, and that its keys and totals follow from the events",
    )
    sub.add_argument("file", help="the report.json (its signature is read from report.json.sig beside it)")
    sub.add_argument("--public-key", help="the deployment's public key, or a file holding it")
    sub.add_argument("--signature", help="the signature file (default: FILE.sig)")
    sub.add_argument("--no-signature", action="store_true", help="check everything but the signature")
    sub.add_argument(
        "--temporal", action="store_true", help="also compare the chain head the incident workflow recorded in Temporal"
    )

    signing = verbs.add_parser("signing-key", help="the deployment's evidence signing key").add_subparsers(
        dest="action", required=True
    )
    verb(signing, "public", cmd_signing_key_public, "print the public key that checks signed reports")

    sub = verb(verbs, "worker", cmd_worker, "run workers for chosen task queues")
    sub.add_argument("--queues", default="all", help="comma list: control, venue names, or all (default)")

    sub = verb(verbs, "dev-server", cmd_dev_server, "run the embedded Temporal dev server, persisted to a file")
    sub.add_argument("--port", type=int, default=7233, help="frontend port (default 7233)")
    sub.add_argument("--ui-port", type=int, default=None, help="serve the web UI on this port")
    sub.add_argument("--db", help="database file (default: <state dir>/temporal.db)")

    sub = verb(verbs, "sim", cmd_sim, "serve an inventory's keys from the venue simulator on loopback")
    sub.add_argument("--inventory", required=True, help="the inventory whose keys the simulator serves")
    sub.add_argument(
        "--port",
        type=int,
        default=0,
        help="first of a block of ports, one per venue: binance +0, bybit +1, okx +2, kucoin +3, gate +4, "
        "mexc +5, kraken +6, coinbase +7 (default: any free ones)",
    )
    sub.add_argument("--masters", help="master credentials JSON (default: the setting's file)")
    sub.add_argument("--scenario", help="faults and limits per venue (JSON)")

    verb(
        verbs,
        "codec-server",
        cmd_codec_server,
        "decrypt payloads for the Temporal web UI and CLI (remote codec; needs KEYREVOKE_CODEC_SERVER_TOKEN)",
    )

    sub = verb(verbs, "demo", cmd_demo, "run a whole mass revoke on loopback and write the report")
    sub.add_argument("--keys", type=int, default=300, help="sample keys over all simulated venues (default 300)")
    sub.add_argument("--scenario", help="simulator faults and limits per venue (JSON)")
    return parser


def _warn_if_state_is_readable(args: argparse.Namespace) -> None:
    """One line on stderr if the state directory or a file in it is open to other users."""
    from keyrevoke.private_files import permission_warning

    warning = permission_warning(_settings(args).state_dir)
    if warning:
        print(terminal_text(f"keyrevoke: {warning}"), file=sys.stderr)


def _temporal_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is Temporal's frontend going away in the middle of a command."""
    service = sys.modules.get("temporalio.service")
    if service is None:
        return False
    return isinstance(error, service.RPCError) and error.status == service.RPCStatusCode.UNAVAILABLE


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the verb, and return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # ccxt logs whole requests at DEBUG, API keys included: never let it below WARNING.
    logging.getLogger("ccxt").setLevel(logging.WARNING)
    try:
        _warn_if_state_is_readable(args)
        code: int = asyncio.run(args.handler(args))
        return code
    except ValidationError as error:
        for problem in error.errors():
            name = "KEYREVOKE_" + "_".join(str(p) for p in problem["loc"]).upper()
            print(f"keyrevoke: error: setting {name}: {problem['msg']}", file=sys.stderr)
        return EXIT_INPUT
    except SettingsError as error:
        # pydantic-settings could not even parse the value (say, bad JSON for a dict setting)
        field = re.search(r'field "(\w+)"', str(error))
        name = f"KEYREVOKE_{field.group(1).upper()}" if field else "a KEYREVOKE_ variable"
        print(f"keyrevoke: error: setting {name}: cannot parse its value", file=sys.stderr)
        return EXIT_INPUT
    except ServiceUnreachable as error:
        print(f"keyrevoke: error: {terminal_text(error)}", file=sys.stderr)
        return exit_codes.UNREACHABLE
    except KeyrevokeError as error:
        # Messages may quote input (a file's line, a key id): shown, never obeyed by the terminal.
        print(f"keyrevoke: error: {terminal_text(error)}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        # The reader went away (`keyrevoke inventory show | head`): what it read was what it wanted.
        _quiet_stdout()
        return exit_codes.OK
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    except Exception as error:
        from commander.incidents import NoWorkerAnswered

        if isinstance(error, NoWorkerAnswered):
            print(f"keyrevoke: {terminal_text(error)}", file=sys.stderr)
            return exit_codes.NOT_FINISHED
        if _temporal_unavailable(error):
            print(
                f"keyrevoke: error: lost Temporal ({getattr(error, 'message', error)}): start it with "
                "`keyrevoke dev-server` or set KEYREVOKE_TEMPORAL_ADDRESS",
                file=sys.stderr,
            )
            return exit_codes.UNREACHABLE
        raise


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main() -> None:
    """Console-script entry point."""
    code = run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    sys.stderr.flush()
    # The Temporal SDK's runtime can abort the interpreter at exit (sdk-python issue 300, exit 134):
    # everything is flushed and closed by now, so leave without the interpreter's teardown.
    os._exit(code)


if __name__ == "__main__":
    main()
