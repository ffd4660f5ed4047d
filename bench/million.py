"""The million-key stages: an incident of 1,000,000 keys written straight into a ledger, then the
commander's commands run against it, each as its own process, with its time and peak RSS.

Running the workflows over a million keys would take hours here, so the ledger is built the way the
workflows leave it: the keys imported, the incident created and planned by keyrevoke's own ledger
code (``python -m bench.million plan``, measured like the commands), then every key's outcome and
its events (the events a real batch records: frozen, baseline, revoked, confirmed; 1% escalated;
0.1% live) written directly, in one hash chain, as the ledger writes it. The sealed secrets are one
sealed value repeated: nothing here decrypts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.procs import keyrevoke_cli, run_measured, settings_env
from commander import exit_codes
from commander.devserver import DevServerConfig, dev_server, free_port
from commander.sample import SAMPLE_VENUES
from keyrevoke.evidence import event_hash
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.settings import Settings

VENUES = tuple(v.venue for v in SAMPLE_VENUES)
INCIDENT = "million"
AT = "2026-11-25T12:00:00.000+00:00"
CHUNK = 50_000
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: what a key's events are, by its outcome (the kinds the batch activities record)
PATHS = {
    "confirmed": ("key.frozen", "key.baseline", "key.revoked", "key.confirmed"),
    "escalated": ("key.frozen", "key.baseline", "key.escalated"),
    "live": ("key.frozen", "key.baseline", "key.revoked", "key.verify.live", "key.live"),
}
DETAIL = {
    "key.frozen": "owner notified; key frozen at the platform",
    "key.baseline": "key authenticates before revoke",
    "key.revoked": "venue accepted the delete",
    "key.confirmed": "venue rejects the key after revoke",
    "key.escalated": "venue refused the delete: escalated to the exchange",
    "key.verify.live": "key still authenticates after revoke",
    "key.live": "key still authenticates after the verify deadline",
}


def outcome(i: int) -> str:
    return "escalated" if i % 100 == 0 else "live" if i % 1000 == 1 else "confirmed"


def _key_rows(start: int, stop: int, sealed: str) -> Iterator[tuple[Any, ...]]:
    for i in range(start, stop):
        yield (
            f"k{i:07d}", VENUES[i % len(VENUES)], f"owner-{i % 20_000}", f"{100_000 + i}", f"{100_000 + i}",
            f"sub-{i}", "", "api", i % 3, f"sha256:{i:016x}", "APIK…9f3c", f"{i:064x}", sealed, sealed, sealed,
            AT, "inventory.csv",
        )  # fmt: skip


KEY_COLUMNS = (
    "key_id, venue, owner, account, account_id, account_name, email, method, priority, fingerprint, key_hint,"
    " content_digest, api_key_sealed, secret_sealed, passphrase_sealed, imported_at, source"
)
EVENT_COLUMNS = "incident_id, n, at, actor, kind, venue, key_id, detail, prev_hash, hash"
OUTCOMES_SQL = (
    "UPDATE incident_keys SET baseline_ok = 1, permissions = 'read,trade', baseline_at = ?, updated_at = ?,"
    " state = CASE WHEN CAST(SUBSTR(key_id, 2) AS INTEGER) % 100 = 0 THEN 'escalated'"
    " WHEN CAST(SUBSTR(key_id, 2) AS INTEGER) % 1000 = 1 THEN 'live' ELSE 'confirmed' END,"
    " revoked_at = CASE WHEN CAST(SUBSTR(key_id, 2) AS INTEGER) % 100 = 0 THEN NULL ELSE ? END,"
    " ended_at = ? WHERE incident_id = ?"
)


class Writer:
    """Bulk rows into the ledger's own tables: sqlite3 ``executemany`` or PostgreSQL ``COPY``."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.connection: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        else:
            import psycopg

            self.connection = psycopg.connect(url, autocommit=True)

    def rows(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        if isinstance(self.connection, sqlite3.Connection):
            marks = ", ".join("?" for _ in columns.split(","))
            self.connection.execute("BEGIN")
            self.connection.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)  # noqa: S608
            self.connection.execute("COMMIT")
        else:
            with self.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not isinstance(self.connection, sqlite3.Connection):
            sql = sql.replace("%", "%%").replace("?", "%s")
        cursor = self.connection.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def close(self) -> None:
        self.connection.close()


def write_keys(settings: Settings, keys: int) -> None:
    """The inventory of ``keys`` keys, as ``inventory import`` leaves it (schema and KEK by keyrevoke's code)."""
    ledger = ledger_from_settings(settings)
    sealed = ledger.box.seal("x" * 64, "bench")
    ledger.close()
    writer = Writer(settings.resolved_ledger_url())
    try:
        for start in range(0, keys, CHUNK):
            writer.rows("keys", KEY_COLUMNS, list(_key_rows(start, min(keys, start + CHUNK), sealed)))
    finally:
        writer.close()


def write_outcomes(settings: Settings, keys: int) -> int:
    """Every key's end state and its events, chained after the incident's own (created, planned)."""
    writer = Writer(settings.resolved_ledger_url())
    try:
        writer.execute(OUTCOMES_SQL, (AT, AT, AT, AT, INCIDENT))
        ((prev, n),) = writer.execute(
            "SELECT chain_head, chain_length FROM incidents WHERE incident_id = ?", (INCIDENT,)
        )
        batch: list[tuple[Any, ...]] = []
        for i in range(keys):
            key_id, venue = f"k{i:07d}", VENUES[i % len(VENUES)]
            for kind in PATHS[outcome(i)]:
                n += 1
                event = {"incident_id": INCIDENT, "n": n, "at": AT, "actor": "keyrevoke", "kind": kind,
                         "venue": venue, "key_id": key_id, "detail": DETAIL[kind]}  # fmt: skip
                digest = event_hash(prev, event)
                batch.append((*event.values(), prev, digest))
                prev = digest
            if len(batch) >= 4 * CHUNK:
                writer.rows("events", EVENT_COLUMNS, batch)
                batch = []
        writer.rows("events", EVENT_COLUMNS, batch)
        writer.execute(
            "UPDATE incidents SET chain_head = ?, chain_length = ? WHERE incident_id = ?", (prev, n, INCIDENT)
        )
        return int(n)
    finally:
        writer.close()


def plan(settings: Settings) -> None:
    """``python -m bench.million plan``: create and plan the incident with keyrevoke's ledger code."""
    ledger = ledger_from_settings(settings)
    try:
        ledger.create_incident(INCIDENT, [], [], "alice")
        print(json.dumps(ledger.plan_incident(INCIDENT)))
    finally:
        ledger.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for the million-key ledger, dropped afterwards."""
    import psycopg

    name = f"keyrevoke_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _stage(measured: Any, **more: Any) -> dict[str, Any]:
    if measured.returncode != 0:
        raise RuntimeError(f"a million-key stage exited {measured.returncode}: {measured.stderr[-600:]}")
    return {"seconds": measured.seconds, "peak_rss_mib": measured.peak_rss_mib, **more}


async def stages(keys: int, folder: Path, ledger_url: str = "") -> dict[str, Any]:
    """Build the ledger, then run and measure: plan, status, keys (if the command exists), report, verify-report."""
    values: dict[str, Any] = {"state_dir": str(folder / "state"), "ledger_url": ledger_url}
    settings = Settings(**values)
    result: dict[str, Any] = {"keys": keys, "backend": "postgresql" if ledger_url else "sqlite", "stages": {}}
    found = result["stages"]
    started = time.monotonic()
    await asyncio.to_thread(write_keys, settings, keys)
    result["write_keys_seconds"] = time.monotonic() - started
    env = settings_env(values)
    found["plan"] = _stage(await run_measured([sys.executable, "-m", "bench.million", "plan"], env, folder / "plan"))
    started = time.monotonic()
    result["events"] = await asyncio.to_thread(write_outcomes, settings, keys)
    result["write_outcomes_seconds"] = time.monotonic() - started

    port = free_port()
    values["temporal_address"] = f"127.0.0.1:{port}"
    settings, env = Settings(**values), settings_env(values)
    config = DevServerConfig(port, db_file=folder / "temporal.db", log_file=folder / "temporal.log")
    async with dev_server(config, settings):
        ledger = ledger_from_settings(settings)
        try:
            queries = []
            for _ in range(3):
                began = time.monotonic()
                counts = await asyncio.to_thread(ledger.counts, INCIDENT)
                queries.append(time.monotonic() - began)
        finally:
            ledger.close()
        runs = [await run_measured([*keyrevoke_cli(), "incident", "status", INCIDENT], env, folder / f"status-{n}")
                for n in range(3)]  # fmt: skip
        found["status"] = {
            "seconds": statistics.median(r.seconds for r in runs),
            "peak_rss_mib": max(r.peak_rss_mib for r in runs),
            "ledger_query_seconds": statistics.median(queries),
            "runs": 3,
            "keys_counted": sum(sum(per.values()) for per in counts.values()),
        }
        # status answers with the incident's exit code: the ledger written here holds keys that may still
        # work (escalated, live) and no workflow ran it, so 3 or 4 is an answer; 2 or 5 is a failure.
        answered = (exit_codes.OK, exit_codes.KEYS_MAY_STILL_WORK, exit_codes.NOT_FINISHED)
        if any(r.returncode not in answered for r in runs):
            raise RuntimeError(f"incident status failed ({runs[0].returncode}): {runs[0].stderr[-600:]}")
        probe = await run_measured([*keyrevoke_cli(), "incident", "keys", "--help"], env, folder / "keys-help")
        if probe.returncode == 0:
            found["keys"] = _stage(
                await run_measured([*keyrevoke_cli(), "incident", "keys", INCIDENT], env, folder / "keys")
            )
        else:
            found["keys"] = {"skipped": "this version has no `keyrevoke incident keys`"}
    out = folder / "report"
    report = await run_measured(
        [*keyrevoke_cli(), "incident", "report", INCIDENT, "--out", str(out)], env, folder / "r"
    )
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())} if out.is_dir() else {}
    found["report"] = _stage(report, file_bytes=sizes)
    public = await run_measured([*keyrevoke_cli(), "signing-key", "public"], env, folder / "pub")
    check = [*keyrevoke_cli(), "incident", "verify-report", str(out / "report.json"), "--public-key",
             public.stdout.strip().splitlines()[-1]]  # fmt: skip
    verify = await run_measured(check, env, folder / "verify")
    found["verify-report"] = _stage(verify, said=verify.stdout.strip().split(": ", 1)[-1][:300])
    return result


if __name__ == "__main__" and sys.argv[1:] == ["plan"]:
    plan(Settings())
