"""The venue simulator speaks each venue's protocol as documented: signing, errors, limits, faults.

These tests sign requests by hand, following the venues' documentation, so they check the simulator
independently of ccxt (tests/test_venue_adapters.py runs ccxt against it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from yarl import URL

from venuesim import Scenario, SimKey, SimMaster, VenueFaults, VenueSimulator, serve_forever

BIN_KEY = SimKey("b1", "binance", "binKey0001", "binSecret0001", account="5001")
ALL = ("read", "trade", "withdraw", "transfer")
BIN_WITHDRAW = SimKey("b2", "binance", "binKey0002", "binSecret0002", account="5002", permissions=ALL)
BIN_OTHER = SimKey("b3", "binance", "binKey0003", "binSecret0003", account="5003")
BIN_MASTER = SimMaster("binance", "binMaster01", "binMasterSecret", account="1")
# main accounts' keys (a user's own): they may delete themselves with delete-api
BY_KEY = SimKey(
    "y1",
    "bybit",
    "bybKey0001",
    "bybSecret0001",
    account="7001",
    permissions=("read", "trade", "transfer"),
    main_account=True,
)
BY_READ_ONLY = SimKey(
    "y2", "bybit", "bybKey0002", "bybSecret0002", account="7002", permissions=("read",), main_account=True
)
# sub-accounts' keys under the platform's master
BY_OTHER = SimKey("y3", "bybit", "bybKey0003", "bybSecret0003", account="7003")
BY_SUB_TRANSFER = SimKey("y4", "bybit", "bybKey0004", "bybSecret0004", account="7004", permissions=("read", "transfer"))
BY_SUB_WITHDRAW = SimKey("y5", "bybit", "bybKey0005", "bybSecret0005", account="7005", permissions=("read", "withdraw"))
BY_MASTER = SimMaster("bybit", "bybMaster01", "bybMasterSecret", account="1000")
KEYS = (BIN_KEY, BIN_WITHDRAW, BIN_OTHER, BY_KEY, BY_READ_ONLY, BY_OTHER, BY_SUB_TRANSFER, BY_SUB_WITHDRAW)
MASTERS = (BIN_MASTER, BY_MASTER)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[VenueSimulator]:
    async with VenueSimulator(KEYS, MASTERS) as simulator:
        yield simulator


def seeded(venues: dict[str, dict[str, Any]]) -> Scenario:
    return Scenario.from_dict({"seed": 3, "venues": venues})


@contextlib.asynccontextmanager
async def started(**venues: dict[str, Any]) -> AsyncIterator[VenueSimulator]:
    async with VenueSimulator(KEYS, MASTERS, seeded(venues)) as simulator:
        yield simulator


# --- signing as the venues document it -------------------------------------------------------------

#: an answer as the helpers below return it: status, body (see ``body_of``), headers
Answer = tuple[int, dict[str, Any], dict[str, str]]


def now_ms() -> int:
    return int(time.time() * 1000)


async def binance(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    method: str,
    path: str,
    api_key: str,
    secret: str,
    params: dict[str, str] | None = None,
    *,
    timestamp: int | None = None,
    recv_window: int | None = None,
    tamper: bool = False,
) -> Answer:
    """A SIGNED request: HMAC-SHA256 hex of the query string, keyed with the secret."""
    query = dict(params or {})
    query["timestamp"] = str(now_ms() if timestamp is None else timestamp)
    if recv_window is not None:
        query["recvWindow"] = str(recv_window)
    total_params = urlencode(query)
    signature = hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()
    if tamper:
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    url = f"{sim.base_url('binance')}{path}?{total_params}&signature={signature}"
    return await send(http, method, url, headers={"X-MBX-APIKEY": api_key})


async def bybit(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    method: str,
    path: str,
    api_key: str,
    secret: str,
    body: dict[str, Any] | None = None,
    *,
    timestamp: int | None = None,
) -> Answer:
    """A v5 request: X-BAPI-SIGN = hex HMAC-SHA256(timestamp + key + recv_window + payload)."""
    stamp, recv_window = str(now_ms() if timestamp is None else timestamp), "5000"
    payload = json.dumps(body or {}) if method == "POST" else ""
    signature = hmac.new(secret.encode(), f"{stamp}{api_key}{recv_window}{payload}".encode(), hashlib.sha256)
    headers = {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": stamp,
        "X-BAPI-RECV-WINDOW": recv_window,
        "X-BAPI-SIGN": signature.hexdigest(),
        "Content-Type": "application/json",
    }
    url = f"{sim.base_url('bybit')}{path}"
    return await send(http, method, url, headers=headers, data=payload or None)


async def send(
    http: aiohttp.ClientSession, method: str, url: str | URL, headers: dict[str, str], data: str | None = None
) -> Answer:
    """Send one request; the answer's status, body (see ``body_of``) and headers."""
    async with http.request(method, url, headers=headers, data=data) as response:
        return response.status, await body_of(response), dict(response.headers)


async def body_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON body; a front door's HTML error page becomes ``{"html": status}``."""
    if response.content_type != "application/json":
        return {"html": response.status}
    result: dict[str, Any] = await response.json()
    return result


RESTRICTIONS = "/sapi/v1/account/apiRestrictions"
BROKER_DELETE = "/sapi/v1/broker/subAccountApi"


# --- Binance ---------------------------------------------------------------------------------------


async def test_binance_api_restrictions_follow_the_key_permissions(http, sim):
    status, body, headers = await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret)
    assert status == 200
    assert body["enableReading"]
    assert body["enableSpotAndMarginTrading"]
    assert not body["enableWithdrawals"]
    assert not body["enableInternalTransfer"]
    assert "X-MBX-USED-WEIGHT-1M" in headers

    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_WITHDRAW.api_key, BIN_WITHDRAW.secret)
    assert body["enableWithdrawals"]
    assert body["ipRestrict"]
    assert body["permitsUniversalTransfer"]


@pytest.mark.parametrize("how", ["wrong secret", "modified signature"])
async def test_binance_rejects_a_bad_signature(http, sim, how):
    secret = "not-the-secret" if how == "wrong secret" else BIN_KEY.secret
    status, body, _ = await binance(
        http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, secret, tamper=how == "modified signature"
    )
    assert (status, body) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})


async def test_binance_timing_security(http, sim):
    late = now_ms() - 10_000
    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret, timestamp=late)
    assert (status, body["code"]) == (400, -1021)
    assert body["msg"] == "Timestamp for this request is outside of the recvWindow."
    # the same timestamp is fine with a wider recvWindow
    status, _, _ = await binance(
        http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret, timestamp=late, recv_window=20_000
    )
    assert status == 200
    ahead = now_ms() + 5_000
    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret, timestamp=ahead)
    assert (status, body["code"]) == (400, -1021)
    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret, recv_window=60_001)
    assert (status, body["code"]) == (400, -1131)


async def test_binance_rejects_unknown_and_malformed_keys(http, sim):
    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, "unknownKey42", "whatever")
    assert (status, body) == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, "bad key!", "whatever")
    assert (status, body) == (401, {"code": -2014, "msg": "API-key format invalid."})


async def test_binance_broker_deletes_a_sub_account_key(http, sim):
    params = {"subAccountId": BIN_KEY.account, "subAccountApiKey": BIN_KEY.api_key}
    # only the broker master may
    status, body, _ = await binance(http, sim, "DELETE", BROKER_DELETE, BIN_OTHER.api_key, BIN_OTHER.secret, params)
    assert (status, body["code"]) == (401, -1002)
    wrong_account = {**params, "subAccountId": "999"}
    status, body, _ = await binance(
        http, sim, "DELETE", BROKER_DELETE, BIN_MASTER.api_key, BIN_MASTER.secret, wrong_account
    )
    assert (status, body["code"]) == (400, -1130)
    assert sim.is_live("binance", BIN_KEY.api_key)

    status, body, _ = await binance(http, sim, "DELETE", BROKER_DELETE, BIN_MASTER.api_key, BIN_MASTER.secret, params)
    assert (status, body) == (200, {})
    assert not sim.is_live("binance", BIN_KEY.api_key)
    status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret)
    assert (status, body["code"]) == (401, -2015)
    # a key that is gone: Invalid Api-Key ID
    status, body, _ = await binance(http, sim, "DELETE", BROKER_DELETE, BIN_MASTER.api_key, BIN_MASTER.secret, params)
    assert (status, body) == (400, {"code": -2008, "msg": "Invalid Api-Key ID."})
    assert sim.stats.deletes["binance"] == 1


async def test_binance_master_without_permission_is_refused(http):
    async with started(binance={"master_lacks_permission": True}) as sim:
        params = {"subAccountId": BIN_KEY.account, "subAccountApiKey": BIN_KEY.api_key}
        status, body, _ = await binance(
            http, sim, "DELETE", BROKER_DELETE, BIN_MASTER.api_key, BIN_MASTER.secret, params
        )
        assert (status, body["code"]) == (401, -2015)
        assert sim.is_live("binance", BIN_KEY.api_key)


async def test_binance_rate_limit_then_ban(http):
    async with started(binance={"requests_per_second": 2, "ban_after_429s": 2, "ban_seconds": 30}) as sim:
        answers = [await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret) for _ in range(5)]
        statuses = [status for status, _, _ in answers]
        assert statuses[:2] == [200, 200]
        assert statuses[2:4] == [429, 429]
        assert statuses[4] == 418
        _, body, headers = answers[2]
        assert body["code"] == -1003
        assert int(headers["Retry-After"]) >= 1
        _, body, headers = answers[4]
        assert body["code"] == -1003
        assert "banned" in body["msg"]
        assert 25 <= int(headers["Retry-After"]) <= 30
        assert sim.stats.rate_limited["binance"] == 2
        assert sim.stats.banned["binance"] == 1
        assert sim.stats.peak_requests_per_second("binance") >= 3


# --- Bybit -----------------------------------------------------------------------------------------


async def test_bybit_query_api_answers_the_documented_fields(http, sim):
    status, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
    assert status == 200
    assert body["retCode"] == 0
    result = body["result"]
    assert result["apiKey"] == BY_KEY.api_key
    assert result["secret"] == ""
    assert result["readOnly"] == 0
    assert result["permissions"]["Spot"] == ["SpotTrade"]
    assert "AccountTransfer" in result["permissions"]["Wallet"]
    status, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_READ_ONLY.api_key, BY_READ_ONLY.secret)
    assert body["result"]["readOnly"] == 1
    assert body["result"]["permissions"]["ContractTrade"] == []


async def test_bybit_errors_are_http_200_with_a_ret_code(http, sim):
    path = "/v5/user/query-api"
    target = {"apikey": BY_OTHER.api_key}
    await bybit(http, sim, "POST", "/v5/user/delete-sub-api", BY_MASTER.api_key, BY_MASTER.secret, target)
    status, body, _ = await bybit(http, sim, "GET", path, BY_OTHER.api_key, BY_OTHER.secret)
    assert (status, body["retCode"], body["retMsg"]) == (200, 10003, "API key is invalid.")  # deleted
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    status, body, _ = await bybit(http, sim, "GET", path, BY_KEY.api_key, "not-the-secret")
    assert (status, body["retCode"]) == (200, 10004)
    status, body, _ = await bybit(http, sim, "GET", path, BY_KEY.api_key, BY_KEY.secret, timestamp=now_ms() - 60_000)
    assert (status, body["retCode"]) == (200, 10002)


async def test_bybit_answers_http_401_in_plain_text_without_credentials_or_for_a_key_it_never_issued(http, sim):
    url = f"{sim.base_url('bybit')}/v5/user/query-api"
    async with http.get(url) as response:
        assert (response.status, response.content_type) == (401, "text/plain")
        assert await response.text() == "401 Unauthorized"
    status, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", "neverIssued01", "whatever")
    assert (status, body) == (401, {"html": 401})


async def test_bybit_query_api_tells_a_main_account_key_from_a_sub_account_key(http, sim):
    _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
    assert (body["result"]["isMaster"], body["result"]["parentUid"]) == (True, "0")
    assert body["result"]["permissions"]["Wallet"] == ["AccountTransfer", "SubMemberTransfer"]
    _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_OTHER.api_key, BY_OTHER.secret)
    assert (body["result"]["isMaster"], body["result"]["parentUid"]) == (False, BY_MASTER.account)
    # "SubMemberTransfer(master account), SubMemberTransferList(sub account)"
    _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_SUB_TRANSFER.api_key, BY_SUB_TRANSFER.secret)
    assert body["result"]["permissions"]["Wallet"] == ["AccountTransfer", "SubMemberTransferList"]


async def test_bybit_sub_account_key_deletes_itself_only_by_delete_sub_api_with_a_transfer_right(http, sim):
    for key in (BY_SUB_TRANSFER, BY_SUB_WITHDRAW):
        _, body, _ = await bybit(http, sim, "POST", "/v5/user/delete-api", key.api_key, key.secret)
        assert body["retCode"] == 10005  # "Use master user's api key only"
        assert sim.is_live("bybit", key.api_key)
    path = "/v5/user/delete-sub-api"
    _, body, _ = await bybit(http, sim, "POST", path, BY_SUB_WITHDRAW.api_key, BY_SUB_WITHDRAW.secret)
    assert body["retCode"] == 10005  # Withdrawal alone: a sub key needs Account or Sub Member Transfer
    assert sim.is_live("bybit", BY_SUB_WITHDRAW.api_key)
    _, body, _ = await bybit(http, sim, "POST", path, BY_KEY.api_key, BY_KEY.secret)
    assert body["retCode"] == 10001  # a main account's key names the sub key it deletes
    _, body, _ = await bybit(http, sim, "POST", path, BY_SUB_TRANSFER.api_key, BY_SUB_TRANSFER.secret)
    assert body["retCode"] == 0
    assert not sim.is_live("bybit", BY_SUB_TRANSFER.api_key)
    assert sim.stats.deletes["bybit"] == 1


async def test_bybit_key_deletes_itself_only_with_wallet_permission(http, sim):
    _, body, _ = await bybit(http, sim, "POST", "/v5/user/delete-api", BY_READ_ONLY.api_key, BY_READ_ONLY.secret)
    assert body["retCode"] == 10005
    assert sim.is_live("bybit", BY_READ_ONLY.api_key)
    _status, body, _ = await bybit(http, sim, "POST", "/v5/user/delete-api", BY_KEY.api_key, BY_KEY.secret)
    assert body["retCode"] == 0
    assert not sim.is_live("bybit", BY_KEY.api_key)
    _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
    assert body["retCode"] == 10003


async def test_bybit_master_deletes_a_sub_key(http, sim):
    path, target = "/v5/user/delete-sub-api", {"apikey": BY_OTHER.api_key}
    _, body, _ = await bybit(http, sim, "POST", path, BY_KEY.api_key, BY_KEY.secret, target)
    assert body["retCode"] == 10005  # only the master manages other keys
    _, body, _ = await bybit(http, sim, "POST", path, BY_MASTER.api_key, BY_MASTER.secret, target)
    assert body["retCode"] == 0
    assert not sim.is_live("bybit", BY_OTHER.api_key)
    _, body, _ = await bybit(http, sim, "POST", path, BY_MASTER.api_key, BY_MASTER.secret, target)
    assert body["retCode"] == 10001


async def test_bybit_rate_limit_headers_and_ip_ban(http):
    async with started(bybit={"requests_per_second": 2, "ban_after_429s": 2, "ban_seconds": 30}) as sim:
        path = "/v5/user/query-api"
        answers = [await bybit(http, sim, "GET", path, BY_KEY.api_key, BY_KEY.secret) for _ in range(4)]
        assert [body["retCode"] for _, body, _ in answers] == [0, 0, 10006, 10006]
        _, _, headers = answers[0]
        assert (headers["X-Bapi-Limit"], headers["X-Bapi-Limit-Status"]) == ("2", "1")
        _, _, headers = answers[2]
        assert headers["X-Bapi-Limit-Status"] == "0"
        assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > now_ms() - 100
        url = f"{sim.base_url('bybit')}{path}"
        async with http.get(url) as response:
            assert (response.status, await response.text()) == (403, "access too frequent")


# --- shared faults ---------------------------------------------------------------------------------


async def test_ip_blocked_and_already_deleted_keys(http):
    async with started(
        binance={"ip_blocked_keys": [BIN_KEY.key_id], "already_deleted_keys": [BIN_OTHER.key_id]},
        bybit={"ip_blocked_keys": [BY_KEY.key_id]},
    ) as sim:
        status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret)
        assert (status, body["code"]) == (401, -2015)
        assert sim.is_live("binance", BIN_KEY.api_key)  # it exists, just not from here
        status, body, _ = await binance(http, sim, "GET", RESTRICTIONS, BIN_OTHER.api_key, BIN_OTHER.secret)
        assert (status, body["code"]) == (401, -2015)
        assert not sim.is_live("binance", BIN_OTHER.api_key)
        _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
        assert body["retCode"] == 10010


async def test_a_deleted_key_keeps_working_during_the_grace_period(http):
    async with started(bybit={"revoke_grace_seconds": 0.4}) as sim:
        _, body, _ = await bybit(http, sim, "POST", "/v5/user/delete-api", BY_KEY.api_key, BY_KEY.secret)
        assert body["retCode"] == 0
        assert sim.is_live("bybit", BY_KEY.api_key)
        _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
        assert body["retCode"] == 0
        await asyncio.sleep(0.5)
        assert not sim.is_live("bybit", BY_KEY.api_key)
        _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
        assert body["retCode"] == 10003


async def test_errors_hangs_and_lost_delete_answers(http):
    async with started(
        binance={"error_rate": 1.0},
        bybit={"timeout_rate": 1.0, "hang_seconds": 5},
    ) as sim:
        url = f"{sim.base_url('binance')}{RESTRICTIONS}"
        async with http.get(url) as response:
            assert response.status == 503
            assert response.content_type == "text/html"
        with pytest.raises(asyncio.TimeoutError):
            await bybit_with_timeout(http, sim, 0.2)

    async with started(binance={"lost_delete_rate": 1.0}) as sim:
        params = {"subAccountId": BIN_KEY.account, "subAccountApiKey": BIN_KEY.api_key}
        try:
            status, _, _ = await binance(
                http, sim, "DELETE", BROKER_DELETE, BIN_MASTER.api_key, BIN_MASTER.secret, params
            )
        except aiohttp.ClientConnectionError:
            status = 0
        assert status in (0, 502)
        assert not sim.is_live("binance", BIN_KEY.api_key)  # the delete itself happened
        assert sim.stats.lost_answers["binance"] == 1
        assert sim.stats.deletes["binance"] == 1


async def bybit_with_timeout(http: aiohttp.ClientSession, sim: VenueSimulator, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)


# --- the simulator's own surface -------------------------------------------------------------------


def test_scenario_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps({"seed": 9, "venues": {"binance": {"latency_ms": 5, "ip_blocked_keys": ["b1"]}}}),
        encoding="utf-8",
    )
    scenario = Scenario.from_file(path)
    assert scenario.seed == 9
    assert scenario.for_venue("binance") == VenueFaults(latency_ms=5, ip_blocked_keys=frozenset({"b1"}))
    assert scenario.for_venue("bybit") == VenueFaults()
    path.write_text(json.dumps({"venues": {"binance": {"latency": 5}}}), encoding="utf-8")
    with pytest.raises(ValueError, match="latency"):
        Scenario.from_file(path)
    with pytest.raises(ValueError, match="error_rate"):
        Scenario.from_dict({"venues": {"bybit": {"error_rate": 2}}})


def test_reprs_hide_secrets_and_bad_input_is_refused():
    for thing in (BIN_KEY, BIN_MASTER):
        assert BIN_KEY.secret not in repr(thing)
        assert BIN_MASTER.secret not in repr(thing)
        assert BIN_KEY.api_key not in repr(thing)
        assert BIN_MASTER.api_key not in repr(thing)
    with pytest.raises(ValueError, match="does not speak"):
        VenueSimulator([SimKey("x", "bitstamp", "k", "s")])
    with pytest.raises(ValueError, match="reuses"):
        VenueSimulator([BIN_KEY, SimKey("dup", "binance", BIN_KEY.api_key, "other")])
    with pytest.raises(ValueError, match="alphanumeric"):
        VenueSimulator([SimKey("odd", "binance", "not-alnum", "s")])
    with pytest.raises(ValueError, match="permissions"):
        SimKey("p", "bybit", "k", "s", permissions=("admin",))


def free_block(size: int) -> int:
    """The first of ``size`` consecutive loopback ports that are free now."""
    for _ in range(50):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            base = first.getsockname()[1]
            if base + size > 65536:
                continue
            try:
                for offset in range(1, size):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", base + offset))
            except OSError:
                continue
            return int(base)
    raise AssertionError("no block of free ports")


async def test_a_given_port_is_the_first_of_a_block_with_a_fixed_place_per_venue(http):
    base = free_block(len(VenueSimulator.protocols))
    async with VenueSimulator([BIN_KEY, BY_KEY], port=base) as sim:
        assert sim.venue_urls == {"binance": f"http://127.0.0.1:{base}", "bybit": f"http://127.0.0.1:{base + 1}"}
        _, body, _ = await bybit(http, sim, "GET", "/v5/user/query-api", BY_KEY.api_key, BY_KEY.secret)
        assert body["retCode"] == 0
        # each port serves its own venue only
        async with http.get(f"http://127.0.0.1:{base}/v5/user/query-api") as response:
            assert response.status == 404


async def test_urls_stats_and_serve_forever(http):
    sim = VenueSimulator([BIN_KEY], [BY_MASTER])
    stop = asyncio.Event()
    task = asyncio.create_task(serve_forever(sim, stop))
    while not sim.running:
        await asyncio.sleep(0.01)
    assert sim.venue_urls == {"binance": f"http://127.0.0.1:{sim.port('binance')}"}
    # bybit is served for its master, though it has no keys: on a port of its own
    assert sim.base_url("bybit") == f"http://127.0.0.1:{sim.port('bybit')}" != sim.base_url("binance")
    await binance(http, sim, "GET", RESTRICTIONS, BIN_KEY.api_key, BIN_KEY.secret)
    snapshot = sim.stats.snapshot()
    assert snapshot["requests"] == {"binance": 1}
    assert snapshot["paths"]["binance"] == {RESTRICTIONS: 1}
    assert sum(snapshot["per_second"]["binance"].values()) == 1
    json.dumps(snapshot)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert not sim.running


# --- OKX, KuCoin, Gate, MEXC: signed by hand as their documentation says ----------------------------

OKX_KEY = SimKey("o1", "okx", "okxKey0001", "okxSecret0001", passphrase="OkxPass1", account="okxsub1")
OKX_MASTER = SimMaster("okx", "okxMaster01", "okxMasterSecret", passphrase="OkxMaster1", account="100")
KC_KEY = SimKey("c1", "kucoin", "kcKey0001", "kcSecret0001", passphrase="Kc!@pass1", account="kcsub1", permissions=ALL)
KC_MASTER = SimMaster("kucoin", "kcMaster01", "kcMasterSecret", passphrase="KcMaster1", account="200")
GATE_KEY = SimKey("g1", "gate", "gateKey0001", "gateSecret0001", account="9001")
GATE_MASTER = SimMaster("gate", "gateMaster01", "gateMasterSecret", account="300")
MEXC_KEY = SimKey("m1", "mexc", "mexcKey0001", "mexcSecret0001", account="mexcsub01", permissions=ALL)
MEXC_MASTER = SimMaster("mexc", "mexcMaster01", "mexcMasterSecret", account="400")
MORE_KEYS = (OKX_KEY, KC_KEY, GATE_KEY, MEXC_KEY)
MORE_MASTERS = (OKX_MASTER, KC_MASTER, GATE_MASTER, MEXC_MASTER)


@contextlib.asynccontextmanager
async def more(**venues: dict[str, Any]) -> AsyncIterator[VenueSimulator]:
    async with VenueSimulator(MORE_KEYS, MORE_MASTERS, seeded(venues)) as simulator:
        yield simulator


def b64_hmac_sha256(secret: str, message: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


def tampered(signature: str) -> str:
    return ("b" if signature[0] == "a" else "a") + signature[1:]


async def okx(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    method: str,
    path: str,
    who: SimKey | SimMaster,
    body: dict[str, Any] | None = None,
    *,
    when: datetime | None = None,
    passphrase: str | None = None,
    tamper: bool = False,
) -> Answer:
    """OK-ACCESS-SIGN = Base64(HMAC-SHA256(timestamp + METHOD + requestPath + body))."""
    moment = when or datetime.now(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    payload = json.dumps(body) if body is not None else ""
    signature = b64_hmac_sha256(who.secret, f"{stamp}{method}{path}{payload}")
    headers = {
        "OK-ACCESS-KEY": who.api_key,
        "OK-ACCESS-SIGN": tampered(signature) if tamper else signature,
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-PASSPHRASE": who.passphrase if passphrase is None else passphrase,
        "Content-Type": "application/json",
    }
    return await send(http, method, f"{sim.base_url('okx')}{path}", headers=headers, data=payload or None)


async def test_okx_signing_and_the_master_delete(http):
    async with more() as sim:
        config = "/api/v5/account/config"
        status, body, _ = await okx(http, sim, "GET", config, OKX_KEY)
        assert (status, body["code"]) == (200, "0")
        assert body["data"][0]["perm"] == "read_only,trade"
        assert body["data"][0]["mainUid"] == OKX_MASTER.account
        for kwargs, expected in (
            ({"tamper": True}, (401, "50113")),
            ({"passphrase": "wrong"}, (401, "50105")),
            ({"when": datetime.now(UTC) - timedelta(seconds=40)}, (401, "50102")),
        ):
            status, body, _ = await okx(http, sim, "GET", config, OKX_KEY, **kwargs)
            assert (status, body["code"]) == expected, kwargs
        unknown = SimKey("x", "okx", "okxNoSuchKey", "s", passphrase="p")
        status, body, _ = await okx(http, sim, "GET", config, unknown)
        assert (status, body) == (401, {"code": "50111", "msg": "Invalid OK-ACCESS-KEY.", "data": []})

        delete = "/api/v5/users/subaccount/delete-apikey"
        target = {"subAcct": OKX_KEY.account, "apiKey": OKX_KEY.api_key}
        _, body, _ = await okx(http, sim, "POST", delete, OKX_KEY, target)
        assert body["code"] == "59500"  # only the master account
        _, body, _ = await okx(http, sim, "POST", delete, OKX_MASTER, {"subAcct": "other", "apiKey": OKX_KEY.api_key})
        assert body["code"] == "59506"
        status, body, _ = await okx(http, sim, "POST", delete, OKX_MASTER, target)
        assert (status, body) == (200, {"code": "0", "msg": "", "data": [{"subAcct": OKX_KEY.account}]})
        assert not sim.is_live("okx", OKX_KEY.api_key)
        _, body, _ = await okx(http, sim, "POST", delete, OKX_MASTER, target)
        assert (body["code"], body["msg"]) == ("59506", "APIKey does not exist.")
    async with more(okx={"requests_per_second": 1, "ban_after_429s": 1}) as sim:
        statuses = [(await okx(http, sim, "GET", config, OKX_KEY))[:2] for _ in range(3)]
        assert statuses[1] == (429, {"code": "50011", "msg": "Too Many Requests", "data": []})
        assert statuses[2] == (403, {"html": 403})  # the front door's page: a ban


async def kucoin(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    method: str,
    path: str,
    who: SimKey | SimMaster,
    *,
    timestamp: int | None = None,
    tamper: bool = False,
    secret: str | None = None,
    passphrase: str | None = None,
    version: str | None = "2",
) -> Answer:
    """KC-API-SIGN = Base64(HMAC-SHA256(timestamp + METHOD + un-encoded endpoint)); passphrase signed too.

    ``secret`` signs instead of the key's own; ``passphrase`` is sent instead of the signed one;
    ``version`` None sends no KC-API-KEY-VERSION.
    """
    stamp = str(now_ms() if timestamp is None else timestamp)
    key = who.secret if secret is None else secret
    signature = b64_hmac_sha256(key, f"{stamp}{method}{path}")
    headers = {
        "KC-API-KEY": who.api_key,
        "KC-API-SIGN": tampered(signature) if tamper else signature,
        "KC-API-TIMESTAMP": stamp,
        "KC-API-PASSPHRASE": b64_hmac_sha256(key, who.passphrase) if passphrase is None else passphrase,
    }
    if version is not None:
        headers["KC-API-KEY-VERSION"] = version
    endpoint, _, query = path.partition("?")
    url = f"{sim.base_url('kucoin')}{endpoint}" + (f"?{quote(query, safe='=&')}" if query else "")
    return await send(http, method, URL(url, encoded=True), headers=headers)


async def test_kucoin_signing(http):
    async with more() as sim:
        status, body, _ = await kucoin(http, sim, "GET", "/api/v1/user/api-key", KC_KEY)
        assert (status, body["code"]) == (200, "200000")
        assert body["data"]["permission"] == "General,Spot,Futures,InnerTransfer,Withdrawal"
        status, body, _ = await kucoin(http, sim, "GET", "/api/v1/user/api-key", KC_KEY, tamper=True)
        assert (status, body["code"]) == (401, "400005")
        status, body, _ = await kucoin(http, sim, "GET", "/api/v1/user/api-key", KC_KEY, timestamp=now_ms() - 6000)
        assert (status, body["code"]) == (401, "400002")


async def test_kucoin_takes_only_a_signed_passphrase_and_checks_the_signature_first(http):
    """Its keys are version 3: a passphrase in clear is refused however the version is announced."""
    async with more() as sim:
        info = "/api/v1/user/api-key"
        _, body, _ = await kucoin(http, sim, "GET", info, KC_KEY)
        assert body["data"]["apiVersion"] == 3
        for version in ("1", None, "2", "3"):
            status, body, _ = await kucoin(
                http, sim, "GET", info, KC_KEY, passphrase=KC_KEY.passphrase, version=version
            )
            assert (status, body["code"]) == (401, "400004"), version
        for version in ("1", None):  # the signed passphrase, announced as version 1 or not at all
            status, body, _ = await kucoin(http, sim, "GET", info, KC_KEY, version=version)
            assert (status, body["code"]) == (401, "400004"), version
        status, body, _ = await kucoin(http, sim, "GET", info, KC_KEY, version="3")
        assert (status, body["code"]) == (200, "200000")
        # a wrong secret spoils the signature and the signed passphrase alike: the signature error
        status, body, _ = await kucoin(http, sim, "GET", info, KC_KEY, secret="not-the-secret")
        assert (status, body["code"]) == (401, "400005")
        # a right signature with a wrong passphrase: the passphrase error
        wrong = b64_hmac_sha256(KC_KEY.secret, "not-the-passphrase")
        status, body, _ = await kucoin(http, sim, "GET", info, KC_KEY, passphrase=wrong)
        assert (status, body["code"]) == (401, "400004")


async def test_kucoin_master_deletes_a_sub_account_key(http):
    async with more() as sim:
        # signed un-encoded, sent encoded: the passphrase holds "!" and "@"
        delete = f"/api/v1/sub/api-key?apiKey={KC_KEY.api_key}&subName={KC_KEY.account}&passphrase="
        status, body, _ = await kucoin(http, sim, "DELETE", delete + KC_KEY.passphrase, KC_KEY)
        assert (status, body["code"]) == (403, "400007")  # only the master
        status, body, _ = await kucoin(http, sim, "DELETE", delete + "not-its-passphrase", KC_MASTER)
        assert (status, body["code"]) == (400, "400100")
        listing = f"/api/v1/sub/api-key?subName={KC_KEY.account}&apiKey={KC_KEY.api_key}"
        _, body, _ = await kucoin(http, sim, "GET", listing, KC_MASTER)
        assert [key["apiKey"] for key in body["data"]] == [KC_KEY.api_key]
        status, body, _ = await kucoin(http, sim, "DELETE", delete + KC_KEY.passphrase, KC_MASTER)
        assert (status, body["data"]) == (200, {"subName": KC_KEY.account, "apiKey": KC_KEY.api_key})
        assert not sim.is_live("kucoin", KC_KEY.api_key)
        _, body, _ = await kucoin(http, sim, "GET", listing, KC_MASTER)
        assert body["data"] == []
    async with more(kucoin={"requests_per_second": 1}) as sim:
        answers = [await kucoin(http, sim, "GET", "/api/v1/user/api-key", KC_KEY) for _ in range(2)]
        assert answers[0][2]["gw-ratelimit-limit"] == "1"
        status, body, headers = answers[1]
        assert (status, body["code"]) == (429, "429000")
        assert headers["gw-ratelimit-remaining"] == "0"
        assert 0 <= int(headers["gw-ratelimit-reset"]) <= 1000


async def gate(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    method: str,
    path: str,
    who: SimKey | SimMaster,
    *,
    timestamp: int | None = None,
    tamper: bool = False,
) -> Answer:
    """SIGN = hex(HMAC-SHA512(METHOD\\nURL\\nquery\\nhex(SHA512(body))\\nTimestamp))."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    payload = "\n".join((method, f"/api/v4{path}", "", hashlib.sha512(b"").hexdigest(), stamp))
    signature = hmac.new(who.secret.encode(), payload.encode(), hashlib.sha512).hexdigest()
    headers = {"KEY": who.api_key, "Timestamp": stamp, "SIGN": tampered(signature) if tamper else signature}
    return await send(http, method, f"{sim.base_url('gate')}/api/v4{path}", headers=headers)


async def test_gate_signing_and_the_main_account_delete(http):
    async with more() as sim:
        status, body, _ = await gate(http, sim, "GET", "/account/detail", GATE_KEY)
        assert (status, body["user_id"]) == (200, 9001)
        status, body, _ = await gate(http, sim, "GET", "/account/detail", GATE_KEY, tamper=True)
        assert (status, body) == (401, {"label": "INVALID_SIGNATURE", "message": "Signature mismatch"})
        status, body, _ = await gate(http, sim, "GET", "/account/detail", GATE_KEY, timestamp=int(time.time()) - 61)
        assert (status, body["label"]) == (401, "REQUEST_EXPIRED")

        delete = f"/sub_accounts/{GATE_KEY.account}/keys/{GATE_KEY.api_key}"
        status, body, _ = await gate(http, sim, "DELETE", delete, GATE_KEY)
        assert (status, body["label"]) == (403, "FORBIDDEN")
        status, body, _ = await gate(http, sim, "DELETE", f"/sub_accounts/1/keys/{GATE_KEY.api_key}", GATE_MASTER)
        assert (status, body["label"]) == (404, "SUB_ACCOUNT_NOT_FOUND")
        status, _, _ = await gate(http, sim, "DELETE", delete, GATE_MASTER)
        assert status == 204
        assert not sim.is_live("gate", GATE_KEY.api_key)
        status, body, _ = await gate(http, sim, "DELETE", delete, GATE_MASTER)
        assert (status, body["label"]) == (404, "NOT_FOUND")
    async with more(gate={"requests_per_second": 1}) as sim:
        answers = [await gate(http, sim, "GET", "/account/detail", GATE_KEY) for _ in range(2)]
        assert answers[0][2]["X-Gate-RateLimit-Limit"] == "1"
        status, body, headers = answers[1]
        assert (status, body["label"]) == (429, "TOO_MANY_REQUESTS")
        assert headers["X-Gate-RateLimit-Requests-Remain"] == "0"
        assert now_ms() - 100 <= int(headers["X-Gate-RateLimit-Reset-Timestamp"]) <= now_ms() + 1000


async def mexc(
    http: aiohttp.ClientSession,
    sim: VenueSimulator,
    method: str,
    path: str,
    who: SimKey | SimMaster,
    params: dict[str, str] | None = None,
    *,
    signature_case: str = "lower",
) -> Answer:
    """signature = lowercase hex HMAC-SHA256 of the query string, keyed with the secret."""
    query = urlencode({**(params or {}), "timestamp": str(now_ms()), "recvWindow": "5000"})
    signature = hmac.new(who.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    signature = signature.upper() if signature_case == "upper" else signature
    url = f"{sim.base_url('mexc')}{path}?{query}&signature={signature}"
    return await send(http, method, url, headers={"X-MEXC-APIKEY": who.api_key})


async def test_mexc_signing_and_the_master_delete(http):
    async with more() as sim:
        status, body, _ = await mexc(http, sim, "GET", "/api/v3/account", MEXC_KEY)
        assert (status, body["canTrade"], body["canWithdraw"]) == (200, True, True)
        status, body, _ = await mexc(http, sim, "GET", "/api/v3/account", MEXC_KEY, signature_case="upper")
        assert (status, body["code"]) == (400, 700002)  # "lowercase only"
        unknown = SimKey("x", "mexc", "mexcNoSuchKey", "s")
        status, body, _ = await mexc(http, sim, "GET", "/api/v3/account", unknown)
        assert (status, body["code"]) == (400, 10072)

        delete = "/api/v3/sub-account/apiKey"
        target = {"subAccount": MEXC_KEY.account, "apiKey": MEXC_KEY.api_key}
        status, body, _ = await mexc(http, sim, "DELETE", delete, MEXC_KEY, target)
        assert (status, body["code"]) == (403, 700007)
        status, body, _ = await mexc(http, sim, "DELETE", delete, MEXC_MASTER, {**target, "subAccount": "nosuchsub"})
        assert body["code"] == 140001
        status, body, _ = await mexc(http, sim, "DELETE", delete, MEXC_MASTER, target)
        assert (status, body) == (200, {"subAccount": MEXC_KEY.account})
        assert not sim.is_live("mexc", MEXC_KEY.api_key)
        status, body, _ = await mexc(http, sim, "DELETE", delete, MEXC_MASTER, target)
        assert (status, body["code"]) == (400, 730706)
    async with more(mexc={"requests_per_second": 1, "ban_after_429s": 1, "ban_seconds": 30}) as sim:
        answers = [await mexc(http, sim, "GET", "/api/v3/account", MEXC_MASTER) for _ in range(3)]
        assert [status for status, _, _ in answers] == [200, 429, 418]
        assert int(answers[1][2]["Retry-After"]) >= 1
        assert 25 <= int(answers[2][2]["Retry-After"]) <= 30


def test_passphrase_venues_refuse_keys_without_one():
    for venue in ("okx", "kucoin"):
        with pytest.raises(ValueError, match="passphrase"):
            VenueSimulator([SimKey("np", venue, "noPassKey1", "secret")])
