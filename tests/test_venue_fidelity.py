"""The simulator against clients written from each venue's documentation (``tests.doc_clients``), not ccxt.

For each of the eight venues: the key's own read succeeds; signed with a wrong secret it gets the
error the venue documents for a wrong signature; once the key is deleted (by the master's documented
delete call, or, at Kraken and Coinbase, by the exchange) it gets the venue's error for an invalid
key. The simulator serves each venue at the root of its own port, so these clients sign the path
they send, as they would at the venue; ``keyrevoke sim`` prints the URLs such a client uses.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import json
import signal
import sysconfig
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests import doc_clients
from tests.doc_clients import Creds, Reply
from venuesim import SimKey, SimMaster, VenueSimulator

KEYREVOKE = str(Path(sysconfig.get_path("scripts")) / "keyrevoke")


def _ec_secret() -> str:
    """A CDP key's secret: the PEM of an EC P-256 private key, as Coinbase hands it out."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem.decode()


def _kraken_secret(seed: str) -> str:
    return base64.b64encode(hashlib.sha512(seed.encode()).digest()).decode()


#: one leaked key per venue (accounts as each venue names them: Gate's numeric user id, the others' names)
KEYS: dict[str, SimKey] = {
    "binance": SimKey("fid-bin", "binance", "binFidelityKey1", "binFidelitySecret1", account="5001"),
    # a sub-account's key, with the transfer right a main account's key would need to delete itself
    "bybit": SimKey(
        "fid-by", "bybit", "bybFidelityKey1", "bybFidelitySecret1", account="7001", permissions=("read", "transfer")
    ),
    "okx": SimKey("fid-okx", "okx", "okxFidelityKey1", "okxFidelitySecret1", passphrase="OkxPass#1", account="okxsub1"),
    "kucoin": SimKey(
        "fid-kc", "kucoin", "kcFidelityKey1", "kcFidelitySecret1", passphrase="Kc!@pass 1", account="kcsub1"
    ),
    "gate": SimKey("fid-gate", "gate", "gateFidelityKey1", "gateFidelitySecret1", account="9001"),
    "mexc": SimKey("fid-mexc", "mexc", "mexcFidelityKey1", "mexcFidelitySecret1", account="mexcsub1"),
    "kraken": SimKey("fid-kr", "kraken", "KrakenFidelity+1/x", _kraken_secret("fidelity"), account="AA11"),
    "coinbase": SimKey("fid-cb", "coinbase", "organizations/org-f/apiKeys/key-f", _ec_secret(), account="portfolio-f"),
}
#: the platform's master credentials, for the venues that delete a sub-account's key through their API
MASTERS: dict[str, SimMaster] = {
    "binance": SimMaster("binance", "binFidelityMaster", "binFidelityMasterSecret", account="1"),
    "bybit": SimMaster("bybit", "bybFidelityMaster", "bybFidelityMasterSecret", account="1000"),
    "okx": SimMaster("okx", "okxFidelityMaster", "okxFidelityMasterSecret", passphrase="OkxMaster1", account="100"),
    "kucoin": SimMaster("kucoin", "kcFidelityMaster", "kcFidelityMasterSecret", passphrase="KcMaster1", account="200"),
    "gate": SimMaster("gate", "gateFidelityMaster", "gateFidelityMasterSecret", account="300"),
    "mexc": SimMaster("mexc", "mexcFidelityMaster", "mexcFidelityMasterSecret", account="400"),
}
#: a secret that is not the key's, in the key's own format
WRONG_SECRETS: dict[str, str] = {
    venue: _kraken_secret("not-the-key") if venue == "kraken" else _ec_secret() if venue == "coinbase" else "wrong1"
    for venue in KEYS
}


def creds(who: SimKey | SimMaster, secret: str | None = None) -> Creds:
    return Creds(who.api_key, who.secret if secret is None else secret, who.passphrase)


@dataclass(frozen=True)
class Documented:
    """What a venue documents for one outcome: the HTTP status, and the venue's code or text in the body."""

    status: int
    code: Callable[[Any], object]  # the body's code, label or message list, as the venue names it
    expected: object

    def check(self, reply: Reply) -> None:
        assert (reply.status, self.code(reply.body)) == (self.status, self.expected), reply

    def describe(self) -> str:
        return f"HTTP {self.status}, {self.expected!r}" if self.expected is not None else f"HTTP {self.status}"


def field(name: str) -> Callable[[Any], object]:
    return lambda body: body.get(name) if isinstance(body, dict) else body


def has(name: str) -> Callable[[Any], object]:
    return lambda body: name in body if isinstance(body, dict) else False


def text(body: Any) -> object:
    return body if isinstance(body, str) else None


@dataclass(frozen=True)
class Expectations:
    success: Documented
    wrong_signature: Documented
    deleted: Documented
    revoked: Documented | None  # the master's delete answer; None: no revocation API


#: each venue's documented answers (see ``tests.doc_clients`` for the pages)
EXPECTED: dict[str, Expectations] = {
    # "Error Codes": -1022 INVALID_SIGNATURE (400), -2015 REJECTED_MBX_KEY (401)
    "binance": Expectations(
        Documented(200, has("ipRestrict"), True),
        Documented(400, field("code"), -1022),
        Documented(401, field("code"), -2015),
        Documented(200, lambda body: body, {}),
    ),
    # "Error Codes": HTTP 200 with retCode 10004 (error sign), 10003 (API key is invalid)
    "bybit": Expectations(
        Documented(200, field("retCode"), 0),
        Documented(200, field("retCode"), 10004),
        Documented(200, field("retCode"), 10003),
        Documented(200, field("retCode"), 0),
    ),
    # "Error Code": 50113 Invalid signature, 50111 Invalid OK-ACCESS-KEY, both HTTP 401
    "okx": Expectations(
        Documented(200, field("code"), "0"),
        Documented(401, field("code"), "50113"),
        Documented(401, field("code"), "50111"),
        Documented(200, field("code"), "0"),
    ),
    # 400005 Signature error, 400003 KC-API-KEY not exists (HTTP 401)
    "kucoin": Expectations(
        Documented(200, field("code"), "200000"),
        Documented(401, field("code"), "400005"),
        Documented(401, field("code"), "400003"),
        Documented(200, field("code"), "200000"),
    ),
    # "Error Handling": 401 with label INVALID_SIGNATURE, INVALID_KEY; the delete answers 204
    "gate": Expectations(
        Documented(200, has("user_id"), True),
        Documented(401, field("label"), "INVALID_SIGNATURE"),
        Documented(401, field("label"), "INVALID_KEY"),
        Documented(204, text, ""),
    ),
    # "Error Codes": 700002 Signature for this request is not valid, 10072 invalid access key
    "mexc": Expectations(
        Documented(200, has("canTrade"), True),
        Documented(400, field("code"), 700002),
        Documented(400, field("code"), 10072),
        Documented(200, field("subAccount"), "mexcsub1"),
    ),
    # "Errors": HTTP 200 with EAPI:Invalid signature, EAPI:Invalid key
    "kraken": Expectations(
        Documented(200, field("error"), []),
        Documented(200, field("error"), ["EAPI:Invalid signature"]),
        Documented(200, field("error"), ["EAPI:Invalid key"]),
        None,
    ),
    # every authentication failure: HTTP 401 "Unauthorized"
    "coinbase": Expectations(
        Documented(200, has("can_view"), True),
        Documented(401, text, "Unauthorized"),
        Documented(401, text, "Unauthorized"),
        None,
    ),
}


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[VenueSimulator, aiohttp.ClientSession]]:
    async with VenueSimulator(KEYS.values(), MASTERS.values()) as sim, aiohttp.ClientSession() as http:
        yield sim, http


@pytest.mark.parametrize("venue", list(KEYS))
async def test_a_client_written_from_the_venue_documentation(venue: str) -> None:
    """Success, the documented wrong-signature error, the documented delete, the documented deleted-key error."""
    key, expected, probe = KEYS[venue], EXPECTED[venue], doc_clients.PROBES[venue]
    async with served() as (sim, http):
        base = sim.base_url(venue)
        expected.success.check(await probe(http, base, creds(key)))
        expected.wrong_signature.check(await probe(http, base, creds(key, WRONG_SECRETS[venue])))
        assert sim.is_live(venue, key.api_key)

        if expected.revoked is not None:
            revoke = doc_clients.REVOKES[venue]
            expected.revoked.check(await revoke(http, base, creds(MASTERS[venue]), creds(key), key.account))
            assert sim.stats.deletes[venue] == 1
        else:
            assert sim.revoke_by_exchange(venue) == 1
        assert not sim.is_live(venue, key.api_key)
        expected.deleted.check(await probe(http, base, creds(key)))


async def test_kucoin_takes_a_passphrase_in_clear_only_from_a_version_1_key() -> None:
    """KuCoin's keys are version 2 or 3 since 2021: the passphrase in clear is refused (400004)."""
    key = KEYS["kucoin"]
    async with served() as (sim, http):
        base = sim.base_url("kucoin")
        for version in ("1", None):
            reply = await doc_clients.kucoin_plain_passphrase_probe(http, base, creds(key), version)
            assert (reply.status, reply.body["code"]) == (401, "400004"), version
        # the master's delete with a wrong passphrase header: refused before anything is deleted
        reply = await doc_clients.kucoin_plain_passphrase_probe(http, base, creds(MASTERS["kucoin"]), "2")
        assert (reply.status, reply.body["code"]) == (401, "400004")
        assert sim.is_live("kucoin", key.api_key)


async def test_bybit_delete_api_is_for_a_main_account_key_only() -> None:
    """ "Delete Master API Key ... Use master user's api key only": a sub-account's key is refused."""
    key = KEYS["bybit"]  # a sub-account's key under the platform's master
    async with served() as (sim, http):
        base = sim.base_url("bybit")
        reply = await doc_clients.bybit_probe(http, base, creds(key))
        assert reply.body["result"]["isMaster"] is False
        reply = await doc_clients.bybit_delete_self(http, base, creds(key))
        assert (reply.status, reply.body["retCode"]) == (200, 10005)
        assert sim.is_live("bybit", key.api_key)


async def test_bybit_answers_http_401_not_json_for_a_key_it_never_issued() -> None:
    async with served() as (sim, http):
        reply = await doc_clients.bybit_probe(http, sim.base_url("bybit"), Creds("bybNeverIssued1", "whatever"))
        assert reply.status == 401
        assert isinstance(reply.body, str)


# --- the CLI's simulator ----------------------------------------------------------------------------


async def test_keyrevoke_sim_prints_urls_a_documented_client_uses(tmp_path: Path) -> None:
    """``keyrevoke sim`` serves each venue on its own port and prints where: Gate's master delete, signed
    over the path as sent, is accepted there."""
    key, master = KEYS["gate"], MASTERS["gate"]
    inventory = tmp_path / "keys.csv"
    with inventory.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key_id", "venue", "owner", "account", "api_key", "secret", "method"])
        writer.writerow([key.key_id, "gate", "owner-1", key.account, key.api_key, key.secret, "sub"])
    masters = tmp_path / "masters.json"
    masters.write_text(json.dumps({"gate": {"api_key": master.api_key, "secret": master.secret}}))
    process = await asyncio.create_subprocess_exec(
        KEYREVOKE,
        "sim",
        "--state-dir",
        str(tmp_path / "state"),
        "--inventory",
        str(inventory),
        "--masters",
        str(masters),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        printed: list[str] = []
        while not printed or not printed[-1].startswith("KEYREVOKE_VENUE_URLS="):
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, f"keyrevoke sim ended: {(await process.stderr.read()).decode() if process.stderr else ''}"
            printed.append(line.decode().strip())
        urls = json.loads(printed[-1].removeprefix("KEYREVOKE_VENUE_URLS=").strip("'"))
        assert printed[0] == f"gate {urls['gate']}"
        assert urls["gate"].startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            base = urls["gate"]
            assert (await doc_clients.gate_probe(http, base, creds(key))).status == 200
            reply = await doc_clients.gate_revoke(http, base, creds(master), creds(key), key.account)
            assert reply.status == 204
            reply = await doc_clients.gate_probe(http, base, creds(key))
            assert (reply.status, reply.body["label"]) == (401, "INVALID_KEY")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode == 0
