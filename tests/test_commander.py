"""What the incident commander sees and can do, through the ``keyrevoke`` command as a person runs it.

Real parts throughout: the test run's Temporal dev server, the venue simulator on loopback, the
ledger, and ``keyrevoke worker`` as its own process where a worker is wanted. Each test says what a
commander would notice: the exit code, the lines printed, and what the ledger recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from commander import exit_codes
from commander.main import build_parser
from commander.sample import write_sample
from commander.situation import IncidentView, VenueView, summary_lines
from keyrevoke.settings import Settings
from keyrevoke.states import Measures
from tests.harness import Stage, address_of, stage, until
from tests.test_cli_e2e import KEYREVOKE, cli_env, keyrevoke, served
from tests.test_operators import make_key, register
from workflows.incident import incident_workflow_id, venue_workflow_id

pytestmark = pytest.mark.e2e

VENUES = ("binance", "bybit")


@contextlib.asynccontextmanager
async def small_stage(
    tmp_path: Path, queue_prefix: str, dev_client: Client, scenario: dict[str, Any] | None = None, keys: int = 16
) -> AsyncIterator[Stage]:
    async with stage(tmp_path, keys, queue_prefix, address_of(dev_client), scenario=scenario, venues=VENUES) as st:
        yield st


@contextlib.asynccontextmanager
async def worker_process(env: dict[str, str], log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``keyrevoke worker --queues all`` as its own process until the block ends (SIGTERM, as Kubernetes)."""
    with log.open("w") as out:
        process = subprocess.Popen([KEYREVOKE, "worker", "--queues", "all"], env=env, stdout=out, stderr=out)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def terminate(client: Client, incident_id: str, venues: tuple[str, ...] = VENUES) -> None:
    """End what a test leaves running, so that its worker can stop."""
    for workflow_id in [incident_workflow_id(incident_id), *(venue_workflow_id(incident_id, v) for v in venues)]:
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(workflow_id).terminate("test over")


def free_port_taken() -> socket.socket:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    return held


# --- exit codes and the two measures -----------------------------------------------------------


async def test_an_incident_with_escalated_keys_ends_with_exit_3_and_says_what_to_do(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    scenario = {"venues": {"binance": {"master_lacks_permission": True}}}
    async with small_stage(tmp_path, queue_prefix, dev_client, scenario) as st:
        env = cli_env(st) | {
            "KEYREVOKE_ESCALATION_WAIT_SECONDS": "1",
            "KEYREVOKE_ESCALATION_PROBE_INTERVAL_SECONDS": "0.5",
        }
        async with worker_process(env, tmp_path / "worker.log"):
            await until(lambda: served(dev_client, st.settings, VENUES))
            started = await keyrevoke(env, "incident", "start", "--id", "esc-view", "--watch", check=False)
            assert started.returncode == exit_codes.KEYS_MAY_STILL_WORK, started.stdout + started.stderr
            binance = sum(1 for r in st.rows if r.venue == "binance")
            bybit = len(st.rows) - binance
            # The plan per venue before anything starts, and the summary with what to do next at the end.
            assert f"ok: binance: {binance} keys to revoke" in started.stderr
            assert f"plan: {len(st.rows)} keys at 2 venue(s)" in started.stderr
            assert (
                f"incident esc-view: workflow completed; {len(st.rows)} keys; work finished 100%; "
                f"may still work {binance}" in (started.stdout)
            )
            assert f"{binance} escalated: send the escalation packet" in started.stdout
            assert f"packets: {st.settings.resolved_escalation_dir() / 'esc-view'}" in started.stdout
            assert "100% done" not in started.stdout + started.stderr

            status = await keyrevoke(env, "incident", "status", "esc-view", "--json", check=False)
            assert status.returncode == exit_codes.KEYS_MAY_STILL_WORK
            view = json.loads(status.stdout)
            assert view["finished_ratio"] == 1.0
            assert view["may_still_work"] == binance
            assert view["venues"]["binance"]["may_still_work"] == binance
            assert view["venues"]["bybit"]["may_still_work"] == 0
            assert view["venues"]["bybit"]["states"] == {"confirmed": bybit}

            # Piped, the view is plain lines with nothing cut off.
            plain = await keyrevoke(env, "incident", "status", "esc-view", check=False)
            assert plain.returncode == exit_codes.KEYS_MAY_STILL_WORK
            assert f"  binance: escalated {binance} | work finished 100%, may still work {binance}" in plain.stdout
            assert "…" not in plain.stdout

            # The keys someone must act on, with their last error, for the people who must act.
            keys = await keyrevoke(env, "incident", "keys", "esc-view", "--state", "escalated")
            lines = keys.stdout.splitlines()
            assert lines[-1] == f"{binance} keys"
            assert len(lines) == binance + 2
            assert all("binance" in line and "escalated" in line for line in lines[1:-1])
            hints = {r.key_id for r in st.rows if r.venue == "binance"}
            assert {line.split()[0] for line in lines[1:-1]} == hints

            # A person closes them (the exchange deleted them): now nothing may still work, and status exits 0.
            refused = await keyrevoke(env, "incident", "close", "esc-view", "--state", "escalated", check=False)
            assert refused.returncode == exit_codes.REFUSED  # no reason given
            stray = tmp_path / "stray.txt"
            stray.write_text("no-such-key\n")
            refused = await keyrevoke(
                env, "incident", "close", "esc-view", "--keys", str(stray), "--reason", "x", check=False
            )
            assert refused.returncode == exit_codes.REFUSED
            assert "not keys of incident esc-view: no-such-key; nothing was closed" in refused.stderr
            closed = await keyrevoke(
                env,
                "incident",
                "close",
                "esc-view",
                "--state",
                "escalated",
                "--venue",
                "binance",
                "--reason",
                "exchange deleted them",
            )
            # The close is signed like every control action: the log names the operator and the key that decided.
            assert f"{binance} keys closed by commander-on-duty (SHA256:" in closed.stdout
            assert closed.stdout.rstrip().endswith("): exchange deleted them")
            events = [e for e in st.ledger.events("esc-view") if e["kind"] == "key.closed"]
            assert len(events) == binance
            assert len({e["actor"] for e in events}) == 1
            assert all(e["actor"].startswith("commander-on-duty (SHA256:") for e in events)
            assert all("exchange deleted them" in e["detail"] for e in events)
            done = await keyrevoke(env, "incident", "status", "esc-view")
            assert done.returncode == exit_codes.OK
            assert "may still work 0" in done.stdout
            assert "every key is confirmed dead or closed by a person" in done.stdout

            ended = await keyrevoke(env, "incident", "cancel", "esc-view", "--reason", "too late", check=False)
            assert ended.returncode == exit_codes.REFUSED
            assert "incident esc-view is not running (workflow completed): nothing to cancel" in ended.stderr

            listed = await keyrevoke(env, "incident", "list")
            row = next(line for line in listed.stdout.splitlines() if line.startswith("esc-view "))
            assert row.split()[1] == "completed"
            assert row.split()[-1] == "0"  # may still work


# --- no worker, stuck venues, control that answers --------------------------------------------


async def test_without_a_worker_the_commander_is_told_and_cancel_answers(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    async with small_stage(tmp_path, queue_prefix, dev_client) as st:
        env = cli_env(st)
        check = await keyrevoke(env, "check", check=False)
        assert check.returncode == exit_codes.REFUSED
        assert f"warning: the incident's workflows: no worker is serving queue {queue_prefix}-control" in check.stdout
        assert f"warning: binance: no worker is serving queue {queue_prefix}-venue-binance" in check.stdout
        assert "not ready: 0 error(s), 3 warning(s)" in check.stdout

        refused = await keyrevoke(env, "incident", "start", "--id", "idle", check=False)
        assert refused.returncode == exit_codes.REFUSED
        assert "refused: 3 warning(s) above; fix them, or start anyway with --force" in refused.stderr
        assert st.ledger.get_incident("idle") is None  # nothing recorded, nothing frozen

        started = await keyrevoke(env, "incident", "start", "--id", "idle", "--force")
        assert started.stdout.strip() == "idle"
        status = await keyrevoke(env, "incident", "status", "idle", check=False)
        assert status.returncode == exit_codes.NOT_FINISHED
        assert f"no worker is serving queue {queue_prefix}-control: start `keyrevoke worker`" in status.stdout
        assert "incident idle: workflow running; no keys planned yet" in status.stdout
        assert "still running" in status.stdout
        assert "work finished 100%" not in status.stdout
        as_json = await keyrevoke(env, "incident", "status", "idle", "--json", check=False)
        assert as_json.returncode == exit_codes.NOT_FINISHED
        assert json.loads(as_json.stdout)["control_queue"]["served"] is False

        cancel = await keyrevoke(env, "incident", "cancel", "idle", "--reason", "wrong scope", check=False)
        assert cancel.returncode == exit_codes.NOT_FINISHED
        assert "cancel of incident idle is recorded in the ledger, but no worker is serving queue" in cancel.stderr
        requested = [e for e in st.ledger.events("idle") if e["kind"] == "incident.cancel.requested"]
        assert [e["detail"] for e in requested] == ["wrong scope"]
        assert requested[0]["actor"].startswith("commander-on-duty (SHA256:")  # the operator who signed it

        # Once a worker runs, the same incident goes on to its end, and status says so.
        async with worker_process(env, tmp_path / "worker.log"):
            watched = await keyrevoke(env, "incident", "status", "idle", "--watch", check=False)
        assert watched.returncode == exit_codes.OK, watched.stdout + watched.stderr
        assert "may still work 0" in watched.stdout


async def test_a_stuck_venue_shows_its_reason_and_pause_and_cancel_show(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    scenario = {"venues": {"bybit": {"error_rate": 1.0}}}
    async with small_stage(tmp_path, queue_prefix, dev_client, scenario) as st:
        env = cli_env(st) | {"KEYREVOKE_REQUEST_ATTEMPTS": "1"}
        async with worker_process(env, tmp_path / "worker.log"):
            await until(lambda: served(dev_client, st.settings, VENUES))
            await keyrevoke(env, "incident", "start", "--id", "stuck")
            try:

                async def failing() -> dict[str, Any] | None:
                    view = json.loads(
                        (await keyrevoke(env, "incident", "status", "stuck", "--json", check=False)).stdout
                    )
                    step: dict[str, Any] | None = view["venues"]["bybit"]["failing"]
                    return step if step and step["attempt"] >= 2 else None

                await until(failing, seconds=120)
                step = await failing()
                assert step is not None
                assert step["error_type"] == "VenueUnavailable"
                assert step["message"].startswith("bybit: ")
                plain = await keyrevoke(env, "incident", "status", "stuck", check=False)
                assert plain.returncode == exit_codes.NOT_FINISHED
                assert "failing: VenueUnavailable: bybit: " in plain.stdout
                assert ", attempt " in plain.stdout

                paused = await keyrevoke(env, "incident", "pause", "stuck", "--reason", "looking into bybit")
                assert paused.returncode == 0
                view = json.loads((await keyrevoke(env, "incident", "status", "stuck", "--json", check=False)).stdout)
                assert view["paused"] == ["all"]
                assert view["venues"]["bybit"]["phase"] == "paused"
                text = (await keyrevoke(env, "incident", "status", "stuck", check=False)).stdout
                assert "paused everywhere: `keyrevoke incident resume stuck` releases it" in text
                await keyrevoke(env, "incident", "resume", "stuck", "--reason", "carry on")
                resumed = [e for e in st.ledger.events("stuck") if e["kind"].startswith("incident.resume")]
                assert any(e["detail"] == "carry on" for e in resumed)

                cancel = await keyrevoke(env, "incident", "cancel", "stuck", "--reason", "bybit is down")
                assert cancel.returncode == 0
                view = json.loads((await keyrevoke(env, "incident", "status", "stuck", "--json", check=False)).stdout)
                if view["workflow"] == "running":  # cancelling until the venue's keys are handed back
                    assert view["cancel_reason"]
                    assert any(note.startswith("cancelling: ") for note in view["notes"])
            finally:
                await terminate(dev_client, "stuck")
        # However it ended, bybit's keys were never revoked: they may still work, and the exit code says so.
        ended = await keyrevoke(env, "incident", "status", "stuck", "--json", check=False)
        assert ended.returncode == exit_codes.KEYS_MAY_STILL_WORK
        assert json.loads(ended.stdout)["venues"]["bybit"]["may_still_work"] == sum(
            1 for r in st.rows if r.venue == "bybit"
        )


async def test_watch_shows_the_wait_for_approval_and_exits_0_once_approved(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    # Two people, two registered keys: the approval must be signed by another key than the start.
    keys = {name: make_key(tmp_path, name) for name in ("commander-on-duty", "second-person")}
    operators = register(tmp_path / "operators", *keys.items())
    async with small_stage(tmp_path, queue_prefix, dev_client) as st:
        env = cli_env(st) | {
            "KEYREVOKE_OPERATORS_FILE": str(operators),
            "KEYREVOKE_OPERATOR_KEY_FILE": str(keys["commander-on-duty"]),
        }
        async with worker_process(env, tmp_path / "worker.log"):
            await until(lambda: served(dev_client, st.settings, VENUES))
            started = await keyrevoke(env, "incident", "start", "--id", "appr", "--require-approval")
            assert "waiting for approval: keyrevoke incident approve appr (by another person)" in started.stderr
            watch = await asyncio.create_subprocess_exec(
                KEYREVOKE,
                "incident",
                "status",
                "appr",
                "--watch",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            shown: list[str] = []
            try:
                while not any("waiting for approval: `keyrevoke incident approve appr`" in line for line in shown):
                    assert watch.stdout is not None
                    line = await asyncio.wait_for(watch.stdout.readline(), 120)
                    assert line, "the watch ended before it showed the wait for approval:\n" + "".join(shown)
                    shown.append(line.decode())
                assert any("phase awaiting_approval" in line for line in shown)
                approver = env | {"KEYREVOKE_OPERATOR_KEY_FILE": str(keys["second-person"])}
                await keyrevoke(approver, "incident", "approve", "appr", "--reason", "plan checked")
                out, _ = await asyncio.wait_for(watch.communicate(), 300)
            finally:
                if watch.returncode is None:
                    watch.kill()
                    await watch.wait()
            assert watch.returncode == exit_codes.OK
            assert "incident appr: workflow completed; 16 keys; work finished 100%; may still work 0" in out.decode()
            approved = [e for e in st.ledger.events("appr") if e["kind"] == "incident.approved"]
            assert [e["detail"] for e in approved] == ["plan checked"]
            assert approved[0]["actor"].startswith("second-person (SHA256:")


# --- what a start includes ---------------------------------------------------------------------


async def test_a_start_shows_its_plan_and_leaves_out_keys_already_dead(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    async with small_stage(tmp_path, queue_prefix, dev_client) as st:
        env = cli_env(st)
        binance = sum(1 for r in st.rows if r.venue == "binance")
        bybit = len(st.rows) - binance
        async with worker_process(env, tmp_path / "worker.log"):
            await until(lambda: served(dev_client, st.settings, VENUES))
            first = await keyrevoke(env, "incident", "start", "--id", "first", "--venue", "binance", "--watch")
            assert first.returncode == exit_codes.OK

            check = await keyrevoke(env, "check", check=False)
            assert check.returncode == exit_codes.OK
            assert (
                f"ok: binance: 0 keys to revoke; {binance} already confirmed dead or closed in an earlier incident: "
                "left out (--include-handled adds them)" in check.stdout
            )
            assert f"ready: an incident would revoke {bybit} keys" in check.stdout

            again = await keyrevoke(env, "incident", "start", "--id", "again", "--venue", "binance", check=False)
            assert again.returncode == exit_codes.REFUSED
            assert f"all {binance} keys in scope were confirmed dead or closed in earlier incidents" in again.stderr

            second = await keyrevoke(env, "incident", "start", "--id", "second", "--watch")
            assert f"plan: {bybit} keys at 1 venue(s); {binance} already handled left out" in second.stderr
            assert second.returncode == exit_codes.OK
            assert set(st.ledger.counts("second")) == {"bybit"}

        nobody = tmp_path / "owners.txt"
        nobody.write_text("nobody-at-all\n")
        refused = await keyrevoke(env, "incident", "start", "--owners", str(nobody), check=False)
        assert refused.returncode == exit_codes.REFUSED
        assert "error: no key in the ledger for 1 owner(s) of --owners" in refused.stderr

        empty = cli_env(st) | {"KEYREVOKE_STATE_DIR": str(tmp_path / "empty"), "KEYREVOKE_LEDGER_URL": ""}
        refused = await keyrevoke(empty, "incident", "start", check=False)
        assert refused.returncode == exit_codes.REFUSED
        assert "error: no key in the ledger: import the inventory first" in refused.stderr

        listed = await keyrevoke(env, "incident", "list", "--json")
        rows = {row["incident_id"]: row for row in json.loads(listed.stdout)}
        assert set(rows) == {"first", "second"}
        assert rows["first"]["keys"] == binance
        assert rows["second"]["keys"] == bybit
        assert all(row["may_still_work"] == 0 and row["workflow"] == "completed" for row in rows.values())


async def test_check_names_our_own_missing_configuration(tmp_path: Path, queue_prefix: str, dev_client: Client) -> None:
    async with small_stage(tmp_path, queue_prefix, dev_client) as st:
        urls = dict(st.settings.venue_urls)
        urls.pop("bybit")
        env = cli_env(st) | {
            "KEYREVOKE_MASTER_CREDENTIALS_FILE": str(tmp_path / "no-masters.json"),
            "KEYREVOKE_VENUE_URLS": json.dumps(urls),
        }
        binance = sum(1 for r in st.rows if r.venue == "binance")
        check = await keyrevoke(env, "check", check=False)
        assert check.returncode == exit_codes.REFUSED
        assert (
            f"error: binance: {binance} keys use method broker, which needs the platform's master credentials: "
            f"none for binance in {tmp_path / 'no-masters.json'}" in check.stdout
        )
        assert "error: bybit: no URL in KEYREVOKE_VENUE_URLS, so it would call the real exchange" in check.stdout
        assert f"ok: binance: calls {urls['binance']} (loopback: a simulator)" in check.stdout

        # An error is never overridden: --force skips warnings only, and nothing is recorded.
        forced = await keyrevoke(env, "incident", "start", "--id", "mis", "--force", check=False)
        assert forced.returncode == exit_codes.REFUSED
        errors = [line for line in forced.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) >= 2
        assert f"refused: {len(errors)} error(s) above; nothing was started" in forced.stderr
        assert st.ledger.get_incident("mis") is None

        real = env | {"KEYREVOKE_ALLOW_REAL_EXCHANGES": "true", "KEYREVOKE_MASTER_CREDENTIALS_FILE": str(st.masters)}
        allowed = await keyrevoke(real, "check", "--venue", "bybit", check=False)
        assert (
            "ok: bybit: calls the real exchange (no URL in KEYREVOKE_VENUE_URLS; KEYREVOKE_ALLOW_REAL_EXCHANGES=true)"
            in (allowed.stdout)
        )
        assert "error:" not in allowed.stdout


# --- papercuts ---------------------------------------------------------------------------------


def _bare_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    env["KEYREVOKE_STATE_DIR"] = str(tmp_path / "state")
    env.update(values)
    return env


def test_unreachable_temporal_or_ledger_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with contextlib.closing(free_port_taken()) as held:
        # A port that accepts nothing Temporal speaks would hang: a closed one refuses at once.
        address = f"127.0.0.1:{held.getsockname()[1]}"
    env = _bare_env(tmp_path, KEYREVOKE_TEMPORAL_ADDRESS=address)
    expected = (
        f"keyrevoke: error: cannot reach Temporal at {address}: start it with `keyrevoke dev-server` "
        "or set KEYREVOKE_TEMPORAL_ADDRESS\n"
    )
    for args in (["incident", "start"], ["incident", "list"], ["worker"], ["check"], ["incident", "cancel", "x"]):
        result = subprocess.run([KEYREVOKE, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == exit_codes.UNREACHABLE, args
        assert result.stderr == expected, args

    pg = _bare_env(tmp_path, KEYREVOKE_LEDGER_URL=f"postgresql://keyrevoke@{address}/ledger")
    for args in (["inventory", "show"], ["incident", "status", "x"], ["incident", "keys", "x"]):
        result = subprocess.run([KEYREVOKE, *args], env=pg, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == exit_codes.UNREACHABLE, args
        assert result.stderr.startswith(f"keyrevoke: error: cannot reach the PostgreSQL ledger at {address}/ledger: ")
        assert len(result.stderr.splitlines()) == 1


def test_version_help_and_an_unknown_report_that_creates_nothing(tmp_path: Path) -> None:
    version = subprocess.run([KEYREVOKE, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout.startswith("keyrevoke ")

    def options(parser: argparse.ArgumentParser, where: str) -> list[tuple[str, str | None]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += options(sub, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction):
                found.append((f"{where} {'/'.join(action.option_strings) or action.dest}", action.help))
        return found

    missing = [name for name, text in options(build_parser(), "keyrevoke") if not text]
    assert missing == []

    out = tmp_path / "report"
    result = subprocess.run(
        [KEYREVOKE, "incident", "report", "inc-nope", "--out", str(out)],
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == exit_codes.REFUSED
    assert result.stderr == "keyrevoke: error: no incident 'inc-nope' in the ledger\n"
    assert not out.exists()


def test_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    inventory, _ = write_sample(tmp_path / "sample", 1500)
    env = _bare_env(tmp_path)
    subprocess.run(
        [KEYREVOKE, "inventory", "import", str(inventory)], env=env, timeout=300, check=True, capture_output=True
    )
    # More output than a pipe holds, so the writer meets the closed pipe.
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{KEYREVOKE}' inventory show --json | head -n 1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout == "[\n"
    assert result.stderr == ""
    assert result.returncode == 0


async def test_a_second_worker_on_a_taken_port_says_which_setting(
    tmp_path: Path, queue_prefix: str, dev_client: Client
) -> None:
    with contextlib.closing(free_port_taken()) as held:
        port = held.getsockname()[1]
        env = _bare_env(
            tmp_path,
            KEYREVOKE_TEMPORAL_ADDRESS=address_of(dev_client),
            KEYREVOKE_TASK_QUEUE_PREFIX=queue_prefix,
            KEYREVOKE_WORKER_HTTP_PORT=str(port),
        )
        result = await asyncio.to_thread(
            subprocess.run,
            [KEYREVOKE, "worker", "--queues", "control"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == exit_codes.REFUSED
    assert result.stderr == (
        f"keyrevoke: error: the worker's HTTP port 127.0.0.1:{port} is taken (another worker on this host?): "
        "set KEYREVOKE_WORKER_HTTP_PORT to a free port, or 0 to turn the endpoint off\n"
    )


def test_keys_an_ended_incident_left_unfinished_are_not_told_to_wait(tmp_path: Path) -> None:
    """A terminated incident's frozen keys: the next step is a new incident, not waiting for this one."""
    counts = {"confirmed": 3, "frozen": 2, "live": 1}
    venue = VenueView("okx", counts, Measures.from_counts(counts), "ended", None, None, None, 0.0)
    view = IncidentView("gone", "terminated", "terminated", [venue], None)
    settings = Settings(state_dir=tmp_path)
    lines = summary_lines(view, settings)
    assert view.exit_code == exit_codes.KEYS_MAY_STILL_WORK
    assert lines[0] == "incident gone: workflow terminated; 6 keys; work finished 67%; may still work 3"
    assert "2 frozen: the incident ended (terminated) before finishing them: start a new incident" in "\n".join(lines)
    assert not any(line.startswith("2 frozen: wait") for line in lines)
    assert "1 live: the owners must delete them at the exchange now" in "\n".join(lines)
    assert "  the keys: `keyrevoke incident keys gone --state live`" in lines
