"""Every export streams: a report of 200,000 keys is written and verified in a bounded memory."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from keyrevoke.crypto import SecretBox
from keyrevoke.evidence import GENESIS, event_hash
from keyrevoke.ledger import open_ledger
from tests.report_fixtures import KEK

KEYS = 200_000
VENUES = ("binance", "bybit", "okx", "kraken")
AT = "2026-11-25T12:00:00.000+00:00"
# The whole process, interpreter and libraries included. Held in memory, these 200,000 keys and
# their events took well over 500 MiB (about 2.5 KB per key as JSON, more as Python objects).
CEILING_MIB = 128


def _ledger(path: Path) -> None:
    """An incident of ``KEYS`` keys written straight into a SQLite ledger (no workflow needed to read it)."""
    open_ledger(f"sqlite:///{path}", SecretBox(KEK)).close()  # the schema
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    keys = [(f"k{i:07d}", VENUES[i % len(VENUES)]) for i in range(KEYS)]
    db.executemany(
        "INSERT INTO keys (key_id, venue, owner, account, method, priority, fingerprint, key_hint, content_digest,"
        " api_key_sealed, secret_sealed, passphrase_sealed, imported_at, source)"
        " VALUES (?, ?, ?, ?, '', 0, ?, 'APIK…9f3c', '', 'x', 'x', 'x', ?, 'inventory.csv')",
        [(k, v, f"owner-{i % 5000}", f"acct-{i}", f"sha256:{i:016x}", AT) for i, (k, v) in enumerate(keys)],
    )
    state = ["escalated" if i % 100 == 0 else "confirmed" for i in range(KEYS)]
    db.executemany(
        "INSERT INTO incident_keys (incident_id, key_id, venue, seq, state, baseline_ok, revoked_at, ended_at,"
        " detail, updated_at) VALUES ('big', ?, ?, ?, ?, 1, ?, ?, 'venue rejects the key after revoke', ?)",
        [(k, v, i // len(VENUES) + 1, state[i], AT, AT, AT) for i, (k, v) in enumerate(keys)],
    )
    events = [
        ("incident.created", "", "", "{}"),
        ("incident.planned", "", "", json.dumps(dict.fromkeys(VENUES, KEYS // 4))),
    ]
    events += [(f"key.{state[i]}", v, k, "venue rejects the key after revoke") for i, (k, v) in enumerate(keys)]
    prev, rows = GENESIS, []
    for n, (kind, venue, key_id, detail) in enumerate(events, start=1):
        event = {
            "incident_id": "big",
            "n": n,
            "at": AT,
            "actor": "keyrevoke",
            "kind": kind,
            "venue": venue,
            "key_id": key_id,
            "detail": detail,
        }
        digest = event_hash(prev, event)
        rows.append((*event.values(), prev, digest))
        prev = digest
    db.executemany(
        "INSERT INTO events (incident_id, n, at, actor, kind, venue, key_id, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute(
        "INSERT INTO incidents (incident_id, scope, created_at, created_by, chain_head, chain_length)"
        " VALUES ('big', ?, ?, 'alice', ?, ?)",
        (json.dumps({"venues": [], "owners": 0, "owners_sha256": ""}), AT, prev, len(rows)),
    )
    db.execute("COMMIT")
    db.close()


def _peak_mib(code: str, cwd: Path) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; its peak RSS (MiB) and what it printed."""
    # VmHWM is this process's own peak; ru_maxrss would carry over the forking test process's peak.
    probe = code + "\nprint([line for line in open('/proc/self/status') if line.startswith('VmHWM')][0])\n"
    ran = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    *output, peak = ran.stdout.strip().splitlines()
    return int(peak.split()[1]) / 1024, "\n".join(output)  # VmHWM:  123456 kB


def test_a_report_of_200000_keys_is_written_and_verified_in_bounded_memory(tmp_path: Path) -> None:
    _ledger(tmp_path / "ledger.db")
    root = Path(__file__).resolve().parent.parent
    write = textwrap.dedent(
        f"""
        from pathlib import Path
        from keyrevoke.crypto import SecretBox
        from keyrevoke.ledger import open_ledger
        from keyrevoke.report import write_report
        from tests.report_fixtures import KEK, SIGNING_KEY
        ledger = open_ledger("sqlite:///{tmp_path / "ledger.db"}", SecretBox(KEK))
        files = write_report(ledger, "big", Path("{tmp_path / "report"}"), SIGNING_KEY)
        print(files.keys, files.events, files.may_still_work)
        """
    )
    peak, output = _peak_mib(write, root)
    assert output == f"{KEYS} {KEYS + 2} {KEYS // 100}"
    assert peak < CEILING_MIB, f"writing the report peaked at {peak:.0f} MiB"
    assert (tmp_path / "report" / "report.json").stat().st_size > 100 * KEYS  # the full record is there
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Keys that may still work: 2000 (the first 1000; all 2000 are in report.csv)" in page

    verify = textwrap.dedent(
        f"""
        from pathlib import Path
        from keyrevoke.report_check import verify_report
        from tests.report_fixtures import SIGNING_KEY
        check = verify_report(Path("{tmp_path / "report" / "report.json"}"), SIGNING_KEY.public_key())
        print(check.keys, check.events, check.files_signed)
        """
    )
    peak, output = _peak_mib(verify, root)
    assert output == f"{KEYS} {KEYS + 2} ('report.json', 'report.csv', 'report.html')"
    assert peak < CEILING_MIB, f"verifying the report peaked at {peak:.0f} MiB"
