"""The evidence report: signed, streamed, and checked as an attacker who knows the chain recipe would try it."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commander.main import build_parser, run
from keyrevoke.evidence import GENESIS, event_hash
from keyrevoke.ledger.store import Transition
from keyrevoke.report import ReportFiles, write_report
from keyrevoke.report_check import ChainAnchor, verify_report
from keyrevoke.report_signature import ReportDoesNotHold, SignedStatement, signature_document
from keyrevoke.signing import public_key_from_text, public_key_text
from keyrevoke.states import KeyState
from tests.report_fixtures import INCIDENT, SIGNING_KEY, incident_ledger, signed_report

README = Path(__file__).resolve().parent.parent / "README.md"
PUBLIC = SIGNING_KEY.public_key()


@pytest.fixture
def report(tmp_path: Path) -> ReportFiles:
    return signed_report(tmp_path)


# --- reading and rewriting a report as a forger would ------------------------------------------------


def parts(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    document = json.loads(path.read_text())
    header = {k: v for k, v in document.items() if k not in ("events", "keys")}
    return header, document["events"], document["keys"]


def rewrite(path: Path, header: dict[str, Any], events: list[dict[str, Any]], keys: list[dict[str, Any]]) -> None:
    """Write the report back in keyrevoke's own layout, so only the forged content differs."""
    lines = ["{"] + [
        f"{json.dumps(k, separators=(',', ':'))}:{json.dumps(v, separators=(',', ':'))}," for k, v in header.items()
    ]
    lines.append('"events":[')
    lines += [json.dumps(e, separators=(",", ":")) + ("," if i < len(events) - 1 else "") for i, e in enumerate(events)]
    lines.append("],")
    lines.append('"keys":[')
    lines += [json.dumps(k, separators=(",", ":")) + ("," if i < len(keys) - 1 else "") for i, k in enumerate(keys)]
    lines += ["]", "}"]
    path.write_text("\n".join(lines) + "\n")


def rechain(events: list[dict[str, Any]], header: dict[str, Any]) -> None:
    """Renumber and recompute every hash (the recipe is public), and fix the header's chain summary."""
    prev = GENESIS
    for n, event in enumerate(events, start=1):
        event["n"] = n
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(prev, event)
    header["chain"] = {"length": len(events), "head": prev}


def recount(header: dict[str, Any], keys: list[dict[str, Any]]) -> None:
    """Adjust the per-venue counts, the totals and the measures to a forged keys table."""
    from keyrevoke.report import measures_of, totals_of

    venues: dict[str, dict[str, int]] = {}
    for key in keys:
        per = venues.setdefault(key["venue"], {})
        per[key["state"]] = per.get(key["state"], 0) + 1
    venues = {v: dict(sorted(p.items())) for v, p in sorted(venues.items())}
    header["venues"] = venues
    header["totals"] = totals_of(venues)
    header["measures"] = measures_of(header["totals"])


def last_event_of(events: list[dict[str, Any]], kind: str) -> int:
    return max(i for i, e in enumerate(events) if e["kind"] == kind)


def edit_one_event_and_rechain(h: dict[str, Any], e: list[dict[str, Any]], k: list[dict[str, Any]]) -> None:
    # An escalation rewritten as a confirmation, every following hash recomputed.
    e[last_event_of(e, "key.escalated")]["kind"] = "key.confirmed"
    rechain(e, h)


def delete_last_key_event_and_fix_summary(h: dict[str, Any], e: list[dict[str, Any]], k: list[dict[str, Any]]) -> None:
    del e[last_event_of(e, "key.live")]
    del e[-1]  # the note after it too, so the log ends where the forger wants
    rechain(e, h)


def delete_middle_event_and_rechain(h: dict[str, Any], e: list[dict[str, Any]], k: list[dict[str, Any]]) -> None:
    del e[last_event_of(e, "key.escalated")]
    rechain(e, h)


def remove_all_events(h: dict[str, Any], e: list[dict[str, Any]], k: list[dict[str, Any]]) -> None:
    e.clear()
    rechain(e, h)


def change_incident_id(h: dict[str, Any], e: list[dict[str, Any]], k: list[dict[str, Any]]) -> None:
    h["incident_id"] = "inc-other"


def flip_escalated_key_to_confirmed(h: dict[str, Any], e: list[dict[str, Any]], k: list[dict[str, Any]]) -> None:
    next(key for key in k if key["state"] == "escalated")["state"] = "confirmed"
    recount(h, k)


Forgery = Callable[[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]], None]
# each forgery, and what the check names when it runs without the signature
FORGERIES: list[tuple[Forgery, str]] = [
    (
        edit_one_event_and_rechain,
        r"key escalated-\d+: the keys table says escalated, but its last event \(\d+\) says confirmed",
    ),
    (
        delete_last_key_event_and_fix_summary,
        r"key live-\d+: the keys table says live, but its last event \(\d+\) says revoked",
    ),
    (
        delete_middle_event_and_rechain,
        r"key escalated-\d+: the keys table says escalated, but its last event \(\d+\) says revoking",
    ),
    (remove_all_events, r"the keys table says \w+, but no event moved it from pending"),
    (change_incident_id, r"event 1 belongs to incident 'inc-1', not 'inc-other'"),
    (
        flip_escalated_key_to_confirmed,
        r"key escalated-\d+: the keys table says confirmed, but its last event \(\d+\) says escalated",
    ),
]


@pytest.mark.parametrize(("forge", "unsigned_reason"), FORGERIES, ids=[f.__name__ for f, _ in FORGERIES])
def test_each_forgery_is_detected_with_and_without_the_signature(
    report: ReportFiles, forge: Forgery, unsigned_reason: str
) -> None:
    header, events, keys = parts(report.json)
    forge(header, events, keys)
    rewrite(report.json, header, events, keys)

    with pytest.raises(ReportDoesNotHold, match=r"differs from the signed report\.json"):
        verify_report(report.json, PUBLIC)
    # Even with the signature set aside, the report contradicts itself where the forger changed it.
    with pytest.raises(ReportDoesNotHold, match=unsigned_reason):
        verify_report(report.json, None)


def test_a_forger_who_re_signs_with_another_key_is_refused(report: ReportFiles) -> None:
    header, events, keys = parts(report.json)
    flip_escalated_key_to_confirmed(header, events, keys)
    rewrite(report.json, header, events, keys)
    import hashlib

    digests = {n: hashlib.sha256((report.json.parent / n).read_bytes()).hexdigest() for n in ("report.json",)}
    mallory = Ed25519PrivateKey.generate()
    report.signature.write_text(signature_document(SignedStatement(INCIDENT, digests), mallory))

    with pytest.raises(ReportDoesNotHold, match="signature does not verify with the given public key"):
        verify_report(report.json, PUBLIC)


def test_the_chain_head_recorded_outside_the_ledger_catches_a_shortened_log(report: ReportFiles) -> None:
    header, events, keys = parts(report.json)
    anchor = ChainAnchor(header["chain"]["length"], header["chain"]["head"], "the workflow's result")
    assert verify_report(report.json, PUBLIC, anchor=anchor).anchored

    del events[-1]  # the trailing note: no key's state depends on it
    rechain(events, header)
    rewrite(report.json, header, events, keys)
    verify_report(report.json, None)  # consistent in itself...
    with pytest.raises(ReportDoesNotHold, match="recorded 45: events were removed"):
        verify_report(report.json, None, anchor=anchor)  # ...but not with Temporal's copy of the head
    wrong = ChainAnchor(3, "f" * 64, "the workflow's result")
    with pytest.raises(ReportDoesNotHold, match="event 3's hash differs from the chain head recorded in"):
        verify_report(report.json, None, anchor=wrong)


def test_a_report_holds_whole_and_its_files_are_private(report: ReportFiles) -> None:
    check = verify_report(report.json, PUBLIC)
    assert (check.events, check.keys, check.may_still_work) == (45, 15, 12)
    assert check.files_signed == ("report.json", "report.csv", "report.html")
    assert check.signed_by == public_key_text(PUBLIC)
    for path in report.paths():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(report.json.parent.stat().st_mode) == 0o700

    # A changed CSV or HTML is caught too: the signature covers every file of the report; and without
    # the signature, report.csv must still say line by line what report.json says.
    report.csv.write_text(report.csv.read_text().replace("escalated", "confirmed"))
    with pytest.raises(ReportDoesNotHold, match=r"report.csv: differs from the signed report.csv"):
        verify_report(report.json, PUBLIC)
    with pytest.raises(
        ReportDoesNotHold, match=r"report.csv:\d+: differs from key escalated-\d+'s line in report.json"
    ):
        verify_report(report.json, None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_change_to_a_signed_report_fails(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = _property_report(tmp_path_factory)
    name = data.draw(st.sampled_from(["report.json", "report.csv", "report.html"]), label="file")
    original = (folder / name).read_bytes()
    changed = bytearray(original)
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    how = data.draw(st.sampled_from(["replace", "delete", "insert"]), label="how")
    if how == "replace":
        changed[position] = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]), label="byte")
    elif how == "delete":
        del changed[position]
    else:
        changed.insert(position, data.draw(st.integers(0, 255), label="byte"))
    changed_folder = folder.parent / "changed"
    shutil.rmtree(changed_folder, ignore_errors=True)
    shutil.copytree(folder, changed_folder)
    (changed_folder / name).write_bytes(bytes(changed))
    with pytest.raises(ReportDoesNotHold, match=re.escape(name)):
        verify_report(changed_folder / "report.json", PUBLIC)


_PROPERTY_FOLDER: list[Path] = []


def _property_report(factory: pytest.TempPathFactory) -> Path:
    if not _PROPERTY_FOLDER:
        _PROPERTY_FOLDER.append(signed_report(factory.mktemp("property")).json.parent)
    return _PROPERTY_FOLDER[0]


# --- what a person sees ------------------------------------------------------------------------------


def test_a_report_paged_in_small_pages_holds_on_both_databases(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keyrevoke.ledger.snapshot.PAGE", 4)  # pages end inside and across venues
    ledger = incident_ledger(tmp_path, per_path=5, url=ledger_url)
    try:
        files = write_report(ledger, INCIDENT, tmp_path / "report", SIGNING_KEY)
    finally:
        ledger.close()
    check = verify_report(files.json, PUBLIC)
    assert (check.keys, check.events, check.may_still_work) == (25, 73, 20)
    key_ids = [k["key_id"] for k in json.loads(files.json.read_text())["keys"]]
    assert len(set(key_ids)) == 25


def test_the_html_leads_with_what_may_still_work_and_the_csv_neutralizes_formulas(tmp_path: Path) -> None:
    report = signed_report(tmp_path, owner='=HYPERLINK("http://evil","x")')
    page = report.html.read_text()
    assert page.index("12 of 15 keys may still work") < page.index("Keys by state")
    assert "Keys that may still work: 12" in page
    assert "confirmed-0" not in page  # confirmed keys are in the CSV and JSON only
    assert "HYPERLINK(&quot;" in page  # escaped, never markup
    with report.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15
    assert {r["owner"] for r in rows} == {'\'=HYPERLINK("http://evil","x")'}
    assert json.loads(report.json.read_text())["keys"][0]["owner"].startswith("=")  # the record stays exact


def test_the_html_caps_the_keys_it_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keyrevoke.report.HTML_KEY_LIMIT", 5)
    page = signed_report(tmp_path).html.read_text()
    assert "Keys that may still work: 12 (the first 5; all 12 are in report.csv)" in page
    assert page.count("<tr><td>") - page.count("<tr><td>binance") - page.count("<tr><td>kraken") == 5


def test_the_ledger_refuses_a_transition_whose_event_does_not_name_its_state(tmp_path: Path) -> None:
    ledger = incident_ledger(tmp_path, per_path=1)
    try:
        wrong = Transition("pending-4", "binance", KeyState.FROZEN, (KeyState.PENDING,), "key.touched")
        with pytest.raises(ValueError, match="does not name the state 'frozen'"):
            ledger.apply(INCIDENT, [wrong])
    finally:
        ledger.close()


# --- the command line ---------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("clean_environment")
def test_report_and_verify_report_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    ledger = incident_ledger(state)  # the CLI's default ledger file and key are under the state dir
    ledger.close()
    monkeypatch.setenv("KEYREVOKE_LEDGER_URL", f"sqlite:///{state / 'ledger.db'}")
    monkeypatch.setenv("KEYREVOKE_LEDGER_KEK", _kek_text())
    code, out, _ = cli(capsys, "incident", "report", INCIDENT, "--state-dir", str(state), "--out", str(tmp_path / "r"))
    assert code == 0
    assert out.split() == [
        str(tmp_path / "r" / n) for n in ("report.json", "report.csv", "report.html", "report.json.sig")
    ]
    code, public, _ = cli(capsys, "signing-key", "public", "--state-dir", str(state))
    assert code == 0
    (tmp_path / "keyrevoke.pub").write_text(public)

    code, out, _ = cli(
        capsys,
        "incident",
        "verify-report",
        str(tmp_path / "r" / "report.json"),
        "--public-key",
        str(tmp_path / "keyrevoke.pub"),
    )
    assert code == 0
    assert "holds: signature verifies (report.json, report.csv, report.html)" in out
    assert "the 15 keys and the totals follow from the events; 12 may still work" in out

    code, _, err = cli(capsys, "incident", "verify-report", str(tmp_path / "r" / "report.json"))
    assert code == 2
    assert "--public-key PUB" in err
    assert "--no-signature" in err
    code, out, _ = cli(capsys, "incident", "verify-report", str(tmp_path / "r" / "report.json"), "--no-signature")
    assert code == 0
    assert "signature NOT checked" in out


def _kek_text() -> str:
    from tests.report_fixtures import KEK

    return KEK.to_text()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"events":[5]}', "report.json:1: not in the layout of a keyrevoke report"),
        (b"{\n" + b'"format":' + b"[" * 100_000 + b"]" * 100_000 + b",\n", "report.json:2: nested too deeply"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "report.json:1: not UTF-8 text"),
        (b"", "report.json: empty"),
        (b'{\n"format":"keyrevoke-report/2",\n"events":[\n5\n],\n', "report.json:3: the header lacks incident_id"),
    ],
    ids=["events-5", "deeply-nested", "binary", "empty", "number-event"],
)
def test_malformed_reports_get_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(content)
    code, _, err = cli(capsys, "incident", "verify-report", str(path), "--no-signature")
    assert code == 2
    assert reason in err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


# --- the README's recipe for a third party --------------------------------------------------------------


def test_the_readme_recipe_checks_a_report_with_cryptography_alone(report: ReportFiles) -> None:
    recipe = re.search(r"<!-- third-party-recipe -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert recipe is not None, "the README's third-party recipe"
    code = recipe.group(1)
    assert "keyrevoke" not in code.replace("keyrevoke.pub", "")  # no keyrevoke install needed
    folder = report.json.parent
    (folder / "keyrevoke.pub").write_text(public_key_text(PUBLIC) + "\n")
    # -I: isolated, so nothing of this checkout is importable; only cryptography from site-packages.
    ran = subprocess.run([sys.executable, "-I", "-c", code], cwd=folder, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert "signed by the deployment's key" in ran.stdout

    report.csv.write_text(report.csv.read_text().replace("escalated", "confirmed"))
    ran = subprocess.run([sys.executable, "-I", "-c", code], cwd=folder, capture_output=True, text=True, check=False)
    assert ran.returncode != 0
    assert "report.csv" in ran.stderr



def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_a_public_key_never_reads_as_an_option_on_the_command_line() -> None:
    """One key in 64 has a urlsafe base64 text that begins with ``-``; the text keyrevoke prints must not."""
    keys = iter(Ed25519PrivateKey.generate, None)
    key = next(k for k in keys if base64.urlsafe_b64encode(_raw(k.public_key())).startswith(b"-")).public_key()
    text = public_key_text(key)
    assert not text.startswith("-")
    parsed = build_parser().parse_args(["incident", "verify-report", "report.json", "--public-key", text])
    assert parsed.public_key == text
    assert _raw(public_key_from_text(text, "--public-key")) == _raw(key)
    # A key printed earlier in the urlsafe alphabet is still read.
    urlsafe = base64.urlsafe_b64encode(_raw(key)).decode()
    assert _raw(public_key_from_text(urlsafe, "--public-key")) == _raw(key)
