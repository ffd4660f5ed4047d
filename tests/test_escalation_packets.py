"""Escalation packets an exchange can act on: encrypted to its security team, signed, mailed, logged.

The incident runs through the real workflows (time-skipping server) with the venue refusing every
revoke; the packet reaches an SMTP server on loopback, and the test decrypts it with the security
team's secret key through gpg itself, then checks every escalated key's API key and facts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from keyrevoke.signing import load_signing_key, public_key_from_text, public_key_text
from keyrevoke.states import KeyState
from tests.harness import run_incident, stage
from tests.outreach import SecurityTeam, SmtpSink, write_contacts
from workers.runner import packet_settings

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
            assert listed["account"] == row.account
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
        from activities.escalation import EscalationDesk
        from keyrevoke.mail import mailer_from_settings

        desk = EscalationDesk(
            st.ledger, packet_settings(st.settings), load_signing_key(st.settings), mailer_from_settings(st.settings)
        )
        assert await desk.escalate("pk1", "binance") == 5
        assert len(smtp.to(binance_team.address)) == 1
        assert len([e for e in st.ledger.events("pk1") if e["kind"] == "escalation.packet.sent"]) == 1
