"""End to end through the ``keyrevoke`` command on a Temporal dev server, as the commander runs it.

A worker runs as its own ``keyrevoke worker`` process; the simulator runs in the test so that the
test can ask it which keys are still live.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import subprocess
import sysconfig
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from commander.devserver import free_port
from commander.sample import API_VENUES, write_sample
from commander.situation import queue_service
from keyrevoke.payload_codec import ENCODING, iter_payloads
from keyrevoke.settings import Settings
from keyrevoke.temporal_client import data_converter
from tests.harness import Stage, address_of, stage, until
from tests.ledger_backends import PostgresSession, postgres_schema, stored_bytes
from tests.otlp_collector import Collector
from workflows.incident import PATCHES as INCIDENT_PATCHES
from workflows.incident import IncidentWorkflow
from workflows.venue import PATCHES, VenueWorkflow

pytestmark = pytest.mark.e2e

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")


def cli_env(st: Stage) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    s = st.settings
    env.update(
        {
            "KEYREVOKE_STATE_DIR": str(s.state_dir),
            "KEYREVOKE_LEDGER_URL": s.resolved_ledger_url(),
            "KEYREVOKE_TEMPORAL_ADDRESS": s.temporal_address,
            "KEYREVOKE_TASK_QUEUE_PREFIX": s.task_queue_prefix,
            "KEYREVOKE_MASTER_CREDENTIALS_FILE": str(st.masters),
            "KEYREVOKE_VENUE_URLS": json.dumps(s.venue_urls),
            "KEYREVOKE_WORKER_HTTP_PORT": "0",
            "KEYREVOKE_VERIFY_INTERVAL_SECONDS": "0.5",
            "KEYREVOKE_OPERATOR": "commander-on-duty",
        }
    )
    return env


async def keyrevoke(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a thread: the simulator serves from this test's event loop meanwhile."""
    result = await asyncio.to_thread(
        subprocess.run, [KEYREVOKE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"keyrevoke {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


async def served(client: Client, settings: Settings, venues: tuple[str, ...]) -> bool:
    """Whether a worker polls the control queue and every venue queue (what `keyrevoke check` looks for)."""
    queues = [queue_service(client, settings.control_queue, "workflow")]
    queues += [queue_service(client, settings.venue_queue(v), "activity") for v in venues]
    return all(q.served for q in await asyncio.gather(*queues))


@pytest.fixture
async def cli_stage(
    request: pytest.FixtureRequest, tmp_path: Path, queue_prefix: str, dev_client: Client, pg_session: PostgresSession
) -> AsyncIterator[Stage]:
    """240 keys over every API venue, in a SQLite ledger (default) or a PostgreSQL one (``indirect``)."""
    with contextlib.ExitStack() as stack:
        overrides = {}
        if getattr(request, "param", "sqlite") == "postgresql":
            overrides["ledger_url"] = stack.enter_context(postgres_schema(pg_session))
        async with stage(tmp_path, 240, queue_prefix, address_of(dev_client), venues=API_VENUES, **overrides) as st:
            yield st


@pytest.fixture
def collector() -> Iterator[Collector]:
    """Where the worker sends its spans and metrics (OTLP), to be searched for secrets."""
    with Collector() as running:
        yield running


@pytest.fixture
async def worker(cli_stage: Stage, tmp_path: Path, collector: Collector) -> AsyncIterator[Worker]:
    """``keyrevoke worker --queues all`` as its own process: log file, metrics port, OTLP to the collector."""
    log = tmp_path / "worker.log"
    port = free_port()
    env = cli_env(cli_stage)
    env["KEYREVOKE_WORKER_HTTP_PORT"] = str(port)
    env["KEYREVOKE_OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
    env["KEYREVOKE_OTEL_EXPORT_INTERVAL_SECONDS"] = "1"
    with log.open("w") as out:
        process = subprocess.Popen(
            [KEYREVOKE, "--verbose", "worker", "--queues", "all"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Worker(log, f"http://127.0.0.1:{port}/metrics", process)
    try:
        yield running
    finally:
        await running.stop()


@dataclass(frozen=True)
class Worker:
    log: Path
    metrics_url: str
    process: subprocess.Popen[bytes]

    async def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod: the worker drains, flushes its spans and exits."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, 40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _histories(client: Client, incident_id: str) -> list[object]:
    histories = []
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH 'keyrevoke-incident-{incident_id}'"):
        histories.append(await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history())
    return histories


@pytest.mark.parametrize("cli_stage", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_mass_revoke_through_the_cli(
    cli_stage: Stage, worker: Worker, dev_client: Client, tmp_path: Path, collector: Collector
) -> None:
    st = cli_stage
    incident = "e2e-" + st.settings.resolved_ledger_url().split(":")[0]  # one per ledger kind
    env = cli_env(st)
    # The inventory was imported by the stage; importing the same file again changes nothing.
    again = await keyrevoke(env, "inventory", "import", str(st.inventory))
    assert again.stdout.strip() == "0 added, 240 unchanged, 0 rejected"

    await until(lambda: served(dev_client, st.settings, API_VENUES))  # else the preflight refuses the start
    first = await keyrevoke(env, "incident", "start", "--id", incident)
    assert first.stdout.strip() == incident
    # A second start of the same incident while it runs joins it instead of doubling the work.
    second = await keyrevoke(env, "incident", "start", "--id", incident)
    assert second.stdout.strip() == incident
    assert "joined" in second.stderr

    watched = await keyrevoke(env, "incident", "status", incident, "--watch")
    assert watched.returncode == 0
    assert f"incident {incident}: workflow completed; 240 keys; work finished 100%; may still work 0" in watched.stdout
    status = json.loads((await keyrevoke(env, "incident", "status", incident, "--json")).stdout)
    assert status["workflow"] == "completed"
    assert status["finished_ratio"] == 1.0
    assert status["may_still_work"] == 0
    assert set(status["venues"]) == set(API_VENUES)
    assert sum(v["states"].get("confirmed", 0) for v in status["venues"].values()) == 240
    assert all(set(v["states"]) == {"confirmed"} for v in status["venues"].values())
    assert all(v["may_still_work"] == 0 for v in status["venues"].values())

    # Every key is really gone at its venue, and was revoked exactly once.
    for row in st.rows:
        assert not st.simulator.is_live(row.venue, row.api_key), row.key_id
    revoked = [e["key_id"] for e in st.ledger.events(incident) if e["kind"] == "key.revoked"]
    assert sorted(revoked) == sorted(r.key_id for r in st.rows)
    # The embedded operator key, registered under KEYREVOKE_OPERATOR: the log names it with its fingerprint.
    actors = {e["actor"] for e in st.ledger.events(incident) if e["kind"].startswith("incident.")}
    assert any(actor.startswith("commander-on-duty (SHA256:") for actor in actors), actors

    # After the end, the same incident id is refused with a clear error.
    refused = await keyrevoke(env, "incident", "start", "--id", incident, check=False)
    assert refused.returncode == 2
    assert "already run" in refused.stderr

    out = tmp_path / "report"
    await keyrevoke(env, "incident", "report", incident, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["confirmed"] == 240
    assert report["measures"]["may_still_work"] == 0
    with (out / "report.csv").open() as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 240
    assert {line["state"] for line in lines} == {"confirmed"}
    assert all(line["baseline_ok"] == "True" and line["revoked_at"] for line in lines)

    assert "confirmed revoked or closed: 240 of 240" in (out / "report.html").read_text()
    public = (await keyrevoke(env, "signing-key", "public")).stdout.strip()
    verified = await keyrevoke(
        env, "incident", "verify-report", str(out / "report.json"), "--public-key", public, "--temporal"
    )
    assert "signature verifies (report.json, report.csv, report.html)" in verified.stdout
    assert "its chain head matches the incident workflow's result in Temporal" in verified.stdout
    assert report["chain"]["length"] == len(report["events"])
    victim = next(e for e in report["events"] if e["kind"] == "key.confirmed")
    original = json.dumps(victim, separators=(",", ":"), ensure_ascii=False)
    text = (out / "report.json").read_text()
    assert original in text
    (tmp_path / "tampered.json").write_text(text.replace(original, original.replace(victim["detail"], "nothing")))
    broken = await keyrevoke(
        env, "incident", "verify-report", str(tmp_path / "tampered.json"), "--no-signature", check=False
    )
    assert broken.returncode == 2
    assert f"the event chain breaks at event {victim['n']}" in broken.stderr

    # The recorded histories replay without non-determinism, with the payload key the CLI's processes made.
    histories = await _histories(dev_client, incident)
    assert len(histories) >= 3  # the incident and one workflow per venue
    converter = data_converter(st.settings, create=False)
    replayer = Replayer(workflows=[IncidentWorkflow, VenueWorkflow], data_converter=converter)
    for history in histories:
        await replayer.replay_workflow(history)  # type: ignore[arg-type]

    # Every payload reached the server encrypted; decrypted, the payloads are scanned for secrets below.
    events = [event for h in histories for event in h.events]  # type: ignore[attr-defined]
    assert {patch_id for event in events for patch_id in _patch_ids(event)} <= {*PATCHES, *INCIDENT_PATCHES}
    stored = [p for event in events if not _patch_ids(event) for p in iter_payloads(event)]
    assert stored
    assert {p.metadata["encoding"] for p in stored} == {ENCODING}
    assert converter.payload_codec is not None
    decrypted = await converter.payload_codec.decode(stored)

    async with aiohttp.ClientSession() as http, http.get(worker.metrics_url) as answer:
        metrics = await answer.text()
    assert f'keyrevoke_keys{{incident="{incident}"' in metrics

    await worker.stop()  # its last spans and metrics go out as it exits
    assert collector.spans > 0, "the worker exported its spans"

    # No secret anywhere: histories, the ledger file, the report, the hook sink, the worker's log.
    places = {
        "histories": "\n".join(h.to_json() for h in histories),  # type: ignore[attr-defined]
        "decrypted history payloads": b"\n".join(p.data for p in decrypted).decode("latin-1"),
        "ledger": stored_bytes(st.ledger).decode("latin-1"),
        "report.json": (out / "report.json").read_text(),
        "report.csv": (out / "report.csv").read_text(),
        "hook": st.settings.resolved_hook_file().read_text(),
        "worker log": worker.log.read_text(),
        "worker metrics": metrics,
        "exported spans and metrics": collector.text(),
        "cli output": first.stdout + first.stderr + watched.stdout + watched.stderr,
    }
    for secret in st.secrets():
        for place, text in places.items():
            assert secret not in text, f"a secret or API key appears in {place}"


async def test_bad_inventory_rows_get_clear_errors_and_lose_nothing(cli_stage: Stage, tmp_path: Path) -> None:
    env = cli_env(cli_stage)
    before = await keyrevoke(env, "inventory", "show", "--json")
    assert len(json.loads(before.stdout)) == 240
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "key_id,venue,owner,account,api_key,secret,passphrase,method,priority\n"
        "n1,binance,alice,1,AAAAAAAAAAAAAAAAAAAAAAAA,s3cretvalue1,,,1\n"
        "n2,krakenish,bob,2,BBBBBBBBBBBBBBBBBBBBBBBB,s3cretvalue2,,,\n"
        "n3,bybit,carol,3,CCCCCCCCCCCCCCCCCCCCCCCC,,,,\n"
        "n1,bybit,dave,4,DDDDDDDDDDDDDDDDDDDDDDDD,s3cretvalue4,,,\n"
        "n5,bybit,erin,5,EEEEEEEEEEEEEEEEEEEEEEEE,s3cretvalue5,,self,high\n"
        "k000000,binance,mallory,6,FFFFFFFFFFFFFFFFFFFFFFFF,s3cretvalue6,,,\n"
    )
    result = await keyrevoke(env, "inventory", "import", str(bad), check=False)
    assert result.returncode == 1
    assert result.stdout.strip() == "1 added, 0 unchanged, 5 rejected"
    errors = result.stderr
    assert f"{bad}:3: key n2: unknown or unsupported venue 'krakenish'" in errors
    assert f"{bad}:4: missing secret" in errors
    assert f"{bad}:5: duplicate key_id n1 (first on line 2)" in errors
    assert f"{bad}:6: key n5: priority must be an integer" in errors
    assert f"{bad}:7: key k000000: already imported with different data" in errors
    for secret in ("s3cretvalue", "BBBBBBBBBBBBBBBBBBBBBBBB", "FFFFFFFFFFFFFFFFFFFFFFFF"):
        assert secret not in errors + result.stdout
    after = json.loads((await keyrevoke(env, "inventory", "show", "--json")).stdout)
    assert len(after) == 241
    kept = next(k for k in after if k["key_id"] == "k000000")
    assert kept["owner"] != "mallory"  # the first import is kept

    missing = await keyrevoke(env, "inventory", "import", str(tmp_path / "nope.csv"), check=False)
    assert missing.returncode == 2
    assert "nope.csv: no such inventory file" in missing.stderr


def test_wrong_setting_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "KEYREVOKE_STATE_DIR": str(tmp_path), "KEYREVOKE_BATCH_SIZE": "0"}
    result = subprocess.run(
        [KEYREVOKE, "inventory", "show"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "KEYREVOKE_BATCH_SIZE" in result.stderr


def test_demo_confirms_every_key(tmp_path: Path) -> None:
    """The README's main command, as a new user runs it (smaller than its default, same path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    env["KEYREVOKE_VERIFY_INTERVAL_SECONDS"] = "0.5"
    state = tmp_path / "demo"
    result = subprocess.run(
        [KEYREVOKE, "demo", "--keys", "200", "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "200 of 200 keys confirmed" in result.stdout
    assert "200 keys; work finished 100%; may still work 0" in result.stdout
    assert "every key is confirmed dead or closed by a person" in result.stdout
    assert f"signed in {state / 'report.json.sig'}" in result.stdout
    report = json.loads((state / "report.json").read_text())
    assert report["totals"]["confirmed"] == 200
    assert (state / "report.csv").exists()
    assert (state / "temporal.db").exists()
    assert (state / "ledger.sqlite").exists()
    inventory, _ = write_sample(tmp_path / "again", 200)  # the same sample: its secrets
    with inventory.open(newline="") as handle:
        for row in csv.DictReader(handle):
            assert row["secret"] not in result.stdout + result.stderr


def _patch_ids(event: Any) -> list[str]:
    """The patch ids an SDK version event holds (its only payloads, plain by Temporal's design).

    A patch marker and the ``TemporalChangeVersion`` search attribute are written by the SDK, not
    by the data converter, and the server must read the latter; they name workflow code paths.
    """
    if event.HasField("marker_recorded_event_attributes"):
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch":
            return [json.loads(p.data)["id"] for p in marker.details["patch-data"].payloads]
    if event.HasField("upsert_workflow_search_attributes_event_attributes"):
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        if set(fields) == {"TemporalChangeVersion"}:
            return list(json.loads(fields["TemporalChangeVersion"].data))
    return []
