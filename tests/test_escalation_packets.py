"""Escalation packets an exchange can act on: encrypted to its security team, signed, mailed, logged.

The incident runs through the real workflows (time-skipping server) with the venue refusing every
revoke; the packet reaches an SMTP server on loopback, and the test decrypts it with the security
team's secret key through gpg itself, then checks every escalated key's API key and facts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
import subprocess
import sysconfig
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.escalation import EscalationDesk
from commander.inventory_import import import_inventory
from commander.sample import write_sample
from keyrevoke.inventory import read_inventory
from keyrevoke.ledger import Ledger
from keyrevoke.ledger.setup import ledger_from_settings
from keyrevoke.mail import mailer_from_settings
from keyrevoke.settings import Settings
from keyrevoke.signing import load_signing_key, public_key_from_text, public_key_text
from keyrevoke.states import KeyState
from tests.harness import run_incident, stage
from tests.outreach import SecurityTeam, SmtpSink, write_contacts
from workers.runner import packet_settings

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")
REFUSING = {"venues": {"binance": {"master_lacks_permission": True}}}


@pytest.fixture(scope="module")
def binance_team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityTeam]:
    team = SecurityTeam.create(tmp_path_factory.mktemp("team"), "security@binance.test")
    yield team
    team.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


async def test_packet_reaches_the_exchange_encrypted_and_decrypts_to_every_escalated_key(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    queue_prefix: str,
    binance_team: SecurityTeam,
    smtp: SmtpSink,
) -> None:
    contacts = write_contacts(
        tmp_path / "contacts.json",
        {"binance": {"address": binance_team.address, "public_key_file": str(binance_team.public_key_file)}},
    )
    async with stage(
        tmp_path,
        10,
        queue_prefix,
        scenario=REFUSING,
        contacts_file=contacts,
        smtp_url=smtp.url,
        smtp_from="incident@platform.test",
        platform_name="Example Bots",
        platform_contact="incident@platform.test, +1 555 0100",
        broker_ids={"binance": "BRK-4711"},
        egress_ips=["203.0.113.7", "203.0.113.8"],
    ) as st:
        await run_incident(time_skipping_env.client, st, "pk1")
        binance = {r.key_id: r for r in st.rows if r.venue == "binance"}
        statuses = {k.key_id: k for k in st.ledger.key_statuses("pk1")}
        assert all(statuses[k].state == KeyState.ESCALATED for k in binance)

        # One mail, to the security team, from the platform.
        mails = smtp.to(binance_team.address)
        assert len(mails) == 1
        mail = mails[0]
        assert mail.sender == "incident@platform.test"
        assert "please revoke 5 leaked Binance API keys" in str(mail.message["Subject"])
        body = mail.body()
        sealed = mail.attachment(".json.asc")
        assert sealed.startswith(b"-----BEGIN PGP MESSAGE-----")
        for row in st.rows:  # neither the mail nor its attachment shows any key in the clear
            for value in (row.api_key, row.secret, row.passphrase):
                if value:
                    assert value not in body
                    assert value.encode() not in sealed

        # The security team decrypts it with its own key and finds what it needs to act.
        packet = json.loads(binance_team.decrypt(sealed))
        assert packet["platform"] == {"name": "Example Bots", "contact": "incident@platform.test, +1 555 0100"}
        assert packet["exchange"]["venue"] == "binance"
        assert packet["bound_to"] == {"broker_id": "BRK-4711", "egress_ips": ["203.0.113.7", "203.0.113.8"]}
        assert packet["incident"]["id"] == "pk1"
        assert packet["incident"]["window"]["from"] <= packet["incident"]["window"]["to"]
        assert "Please revoke (delete) every one of them" in packet["request"]
        assert (packet["part"], packet["parts"], packet["keys_in_all_parts"]) == (1, 1, 5)
        by_key = {k["platform_key_id"]: k for k in packet["keys"]}
        assert sorted(by_key) == sorted(binance)
        for key_id, row in binance.items():
            listed = by_key[key_id]
            assert listed["api_key"] == row.api_key
            assert (listed["account_id"], listed["account_name"]) == (row.account_id, row.account_name)
            assert listed["account"] == row.account_id  # Binance's broker names the sub-account by its id
            assert listed["state"] == "escalated"
            assert listed["permissions"] == [p for p in statuses[key_id].permissions.split(",") if p]
            assert listed["permissions"]  # the baseline probe found them
            assert listed["ip_restricted"] in (True, False)  # Binance's apiRestrictions says
        plain = json.dumps(packet)
        for row in st.rows:
            assert row.secret not in plain
            if row.passphrase:
                assert row.passphrase not in plain

        # Signed with the deployment's key, over the file as attached.
        signature = json.loads(mail.attachment(".json.asc.sig"))
        assert signature["sha256"] == hashlib.sha256(sealed).hexdigest()
        public = public_key_from_text(signature["public_key"], "sig")
        assert signature["public_key"] == public_key_text(load_signing_key(st.settings).public_key())
        public.verify(base64.b64decode(signature["signature"]), f"sha256:{signature['sha256']}".encode())

        # Only the encrypted file is on disk, readable by its owner only.
        folder = st.settings.resolved_escalation_dir() / "pk1"
        assert sorted(p.name for p in folder.iterdir()) == [
            "binance-packet-1-of-1.json.asc",
            "binance-packet-1-of-1.json.asc.sig",
        ]
        assert stat.S_IMODE(os.stat(folder / "binance-packet-1-of-1.json.asc").st_mode) == 0o600
        assert (folder / "binance-packet-1-of-1.json.asc").read_bytes() == sealed

        # The event log names the recipient, the message id and the time.
        sent = [e for e in st.ledger.events("pk1") if e["kind"] == "escalation.packet.sent"]
        assert len(sent) == 1
        assert binance_team.address in sent[0]["detail"]
        assert str(mail.message["Message-ID"]) in sent[0]["detail"]
        assert sent[0]["at"]

        # Sending again (a retried activity) sends nothing twice.
        assert await _desk(st.settings, st.ledger).escalate("pk1", "binance") == 5
        assert len(smtp.to(binance_team.address)) == 1
        assert (folder / "binance-packet-1-of-1.json.asc").read_bytes() == sealed  # still the one mailed
        assert len(list(folder.iterdir())) == 2
        assert len([e for e in st.ledger.events("pk1") if e["kind"] == "escalation.packet.sent"]) == 1


def _escalated_ledger(tmp_path: Path, keys: int, **overrides: object) -> tuple[Settings, Ledger, list[str]]:
    """A ledger whose incident ``big`` holds ``keys`` Kraken keys, all escalated (written directly)."""
    inventory, _ = write_sample(tmp_path / "sample", keys, venues=("kraken",))
    settings = Settings(state_dir=tmp_path / "state", **overrides)  # type: ignore[arg-type]
    ledger = ledger_from_settings(settings)
    result = import_inventory(ledger, inventory)
    assert not result.errors
    ledger.create_incident("big", [], [], "tester")
    ledger.plan_incident("big")
    with ledger.db.transaction() as tx:
        tx.execute(
            "UPDATE incident_keys SET state = ?, permissions = 'read,trade' WHERE incident_id = 'big'",
            (KeyState.ESCALATED.value,),
        )
    api_keys = [row.api_key for row in read_inventory(inventory)[0]]
    return settings, ledger, api_keys


def _desk(settings: Settings, ledger: Ledger) -> EscalationDesk:
    return EscalationDesk(ledger, packet_settings(settings), load_signing_key(settings), mailer_from_settings(settings))


async def test_a_venue_without_a_contact_gets_its_file_and_a_line_that_nobody_was_sent_anything(
    tmp_path: Path, binance_team: SecurityTeam, smtp: SmtpSink
) -> None:
    """The platform's own key stands in: the packet waits, encrypted, to be forwarded by hand."""
    settings, ledger, api_keys = _escalated_ledger(
        tmp_path, 6, smtp_url=smtp.url, packet_fallback_key_file=binance_team.public_key_file
    )
    try:
        # Misconfigured keys (our own set-up lacks something) never go to an exchange.
        with ledger.db.transaction() as tx:
            tx.execute(
                "UPDATE incident_keys SET state = ? WHERE incident_id = 'big' AND key_id = 'k000000'",
                (KeyState.MISCONFIGURED.value,),
            )
        assert await _desk(settings, ledger).escalate("big", "kraken") == 5
        assert smtp.received == []
        sealed = settings.resolved_escalation_dir() / "big" / "kraken-packet-1-of-1.json.asc"
        packet = json.loads(binance_team.decrypt(sealed.read_bytes()))
        assert sorted(k["api_key"] for k in packet["keys"]) == sorted(api_keys[1:])
        assert all(k["ip_restricted"] is None for k in packet["keys"])  # no baseline probe said
        unsent = [e for e in ledger.events("big") if e["kind"] == "escalation.packet.unsent"]
        assert len(unsent) == 1
        assert "no address for kraken" in unsent[0]["detail"]
        assert "nobody was sent anything" in unsent[0]["detail"]
        assert str(sealed) in unsent[0]["detail"]
    finally:
        ledger.close()


async def test_without_any_key_to_encrypt_to_no_packet_touches_the_disk(tmp_path: Path) -> None:
    settings, ledger, _ = _escalated_ledger(tmp_path, 4)
    try:
        assert await _desk(settings, ledger).escalate("big", "kraken") == 4
        assert not (settings.resolved_escalation_dir() / "big").exists()
        unsent = [e["detail"] for e in ledger.events("big") if e["kind"] == "escalation.packet.unsent"]
        assert len(unsent) == 1
        assert "4 keys escalated to Kraken; no OpenPGP key for its security team" in unsent[0]
        assert "no packet written, nobody was sent anything" in unsent[0]
    finally:
        ledger.close()


async def test_a_large_packet_is_written_in_parts_each_mailed_on_its_own(
    tmp_path: Path, binance_team: SecurityTeam, smtp: SmtpSink, ledger_url: str
) -> None:
    """On both ledgers; sending again sends no part twice."""
    contacts = write_contacts(
        tmp_path / "contacts.json",
        {"kraken": {"address": "security@kraken.test", "public_key_file": str(binance_team.public_key_file)}},
    )
    settings, ledger, api_keys = _escalated_ledger(
        tmp_path, 25, smtp_url=smtp.url, contacts_file=contacts, packet_keys_per_part=10, ledger_url=ledger_url
    )
    try:
        assert await _desk(settings, ledger).escalate("big", "kraken") == 25
        mails = smtp.to("security@kraken.test")
        assert len(mails) == 3
        found = []
        for mail in mails:
            packet = json.loads(binance_team.decrypt(mail.attachment(".json.asc")))
            assert packet["parts"] == 3
            found += [k["api_key"] for k in packet["keys"]]
        assert sorted(found) == sorted(api_keys)
        sent = [e for e in ledger.events("big") if e["kind"] == "escalation.packet.sent"]
        assert [e["detail"].split(" (")[0] for e in sent] == ["part 1 of 3", "part 2 of 3", "part 3 of 3"]
        assert await _desk(settings, ledger).escalate("big", "kraken") == 25
        assert len(smtp.to("security@kraken.test")) == 3
    finally:
        ledger.close()


def _peak_while_escalating(tmp_path: Path, keys: int, team: SecurityTeam) -> int:
    settings, ledger, _ = _escalated_ledger(
        tmp_path, keys, packet_fallback_key_file=team.public_key_file, packet_keys_per_part=1_000_000
    )
    try:
        desk = _desk(settings, ledger)
        tracemalloc.start()
        try:
            assert asyncio.run(desk.escalate("big", "kraken")) == keys
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sealed = settings.resolved_escalation_dir() / "big" / "kraken-packet-1-of-1.json.asc"
        assert len(json.loads(team.decrypt(sealed.read_bytes()))["keys"]) == keys
        return peak
    finally:
        ledger.close()


def test_a_packet_of_many_keys_is_streamed_in_bounded_memory(tmp_path: Path, binance_team: SecurityTeam) -> None:
    """Sixteen times the keys, in one part, take no more memory: the packet is never whole in memory."""
    small = _peak_while_escalating(tmp_path / "small", 1_000, binance_team)
    large = _peak_while_escalating(tmp_path / "large", 16_000, binance_team)
    print(f"peak traced memory: {small} B at 1,000 keys, {large} B at 16,000 keys")
    # 16,000 keys' packet is about 3.5 MB of JSON (their records as Python objects, about 20 MB); a
    # page of keys is what the stream holds at a time.
    assert large < 2_000_000
    assert large < small * 1.3


def _cli(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEYREVOKE_")}
    return subprocess.run(
        [KEYREVOKE, "incident", "packets", *args, "--state-dir", str(state)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_commander_sees_which_packets_went_and_sends_them_once_a_contact_is_added(
    tmp_path: Path, binance_team: SecurityTeam, smtp: SmtpSink
) -> None:
    settings, ledger, api_keys = _escalated_ledger(tmp_path, 4)
    ledger.close()
    state = settings.state_dir
    # No contact yet: nothing written, and the line says nobody was sent anything.
    first = _cli(state, "big", "--send")
    assert first.returncode == 0, first.stderr
    assert "kraken: NOT SENT: 4 keys escalated to Kraken; no OpenPGP key" in first.stdout
    assert "nobody was sent anything" in first.stdout
    # The exchange's contact is added: the packet goes now, once.
    contacts = write_contacts(
        tmp_path / "contacts.json",
        {"kraken": {"address": "security@kraken.test", "public_key_file": str(binance_team.public_key_file)}},
    )
    env = {"KEYREVOKE_CONTACTS_FILE": str(contacts), "KEYREVOKE_SMTP_URL": smtp.url}
    second = _cli(state, "big", "--send", **env)
    assert second.returncode == 0, second.stderr
    assert "kraken: SENT: part 1 of 1 (4 keys" in second.stdout
    assert "mailed to security@kraken.test, message id <" in second.stdout
    packet = json.loads(binance_team.decrypt(smtp.to("security@kraken.test")[0].attachment(".json.asc")))
    assert sorted(k["api_key"] for k in packet["keys"]) == sorted(api_keys)
    third = _cli(state, "big", "--send", **env)
    assert third.stdout.strip() == "nothing written now: every part of these packets was mailed already"
    assert len(smtp.to("security@kraken.test")) == 1
    # Without --send: the whole story from the event log.
    story = _cli(state, "big").stdout.splitlines()
    assert [line.split(" ", 1)[1].split(":")[0:2] for line in story] == [
        ["kraken", " NOT SENT"],
        ["kraken", " written"],
        ["kraken", " SENT"],
    ]
    for key in api_keys:
        assert key not in first.stdout + second.stdout + third.stdout + "\n".join(story)
