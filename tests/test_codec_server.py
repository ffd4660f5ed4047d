"""``keyrevoke codec-server``: bearer token, CORS for the UI's origin only, and the codec protocol."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import DataConverter

from commander.codec_server import build_app, run_codec_server
from commander.devserver import free_port
from commander.main import build_parser, cmd_codec_server
from keyrevoke.crypto import KeyEncryptionKey
from keyrevoke.errors import ConfigurationError
from keyrevoke.payload_codec import ENCODING, PayloadEncryptionCodec
from keyrevoke.settings import Settings

TOKEN = "codec-token-0123456789abcdef"
UI = "http://127.0.0.1:8233"
MARKER = "plaintext-marker-for-the-ui"


# No KEYREVOKE_* from the caller's shell leaks into these tests.
pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def codec() -> PayloadEncryptionCodec:
    return PayloadEncryptionCodec(KeyEncryptionKey.generate())


@pytest.fixture
async def http(codec: PayloadEncryptionCodec) -> AsyncIterator[TestClient[object, object]]:
    async with TestClient(TestServer(build_app(codec, TOKEN, UI))) as client:
        yield client


def body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def parse(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


def plain(value: object) -> Payload:
    return DataConverter.default.payload_converter.to_payloads([value])[0]


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def test_decode_returns_the_plaintext_payload(
    http: TestClient[object, object], codec: PayloadEncryptionCodec
) -> None:
    sealed = await codec.encode([plain(MARKER), plain({"n": 1})])

    for path in ("/decode", "/default/decode", "/some/prefix/decode"):
        response = await http.post(path, data=body(sealed), headers={**auth(), "X-Namespace": "default"})
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        assert parse(await response.text()) == [plain(MARKER), plain({"n": 1})]


async def test_encode_seals_what_decode_opens(http: TestClient[object, object], codec: PayloadEncryptionCodec) -> None:
    response = await http.post("/encode", data=body([plain(MARKER)]), headers=auth())
    assert response.status == 200
    [sealed] = parse(await response.text())

    assert sealed.metadata["encoding"] == ENCODING
    assert MARKER.encode() not in sealed.data
    assert await codec.decode([sealed]) == [plain(MARKER)]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
)
async def test_requests_without_the_token_are_refused(
    http: TestClient[object, object], codec: PayloadEncryptionCodec, headers: dict[str, str]
) -> None:
    sealed = await codec.encode([plain(MARKER)])

    for path in ("/decode", "/encode"):
        response = await http.post(path, data=body(sealed), headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert MARKER not in await response.text()


async def test_without_a_configured_token_everything_is_refused(codec: PayloadEncryptionCodec) -> None:
    sealed = await codec.encode([plain(MARKER)])
    async with TestClient(TestServer(build_app(codec, None, UI))) as client:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            response = await client.post("/decode", data=body(sealed), headers=headers)
            assert response.status == 401
            assert "no KEYREVOKE_CODEC_SERVER_TOKEN is configured" in await response.text()


async def test_cors_preflight_only_for_the_ui_origin(http: TestClient[object, object]) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}

    allowed = await http.options("/default/decode", headers={"Origin": UI, **preflight})
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == UI
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    allowed_headers = {h.strip().lower() for h in allowed.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-namespace"} <= allowed_headers
    # the web UI's requests carry the sign-in cookie, which browsers send only if credentials are allowed
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"

    for origin in ("http://evil.example", "http://localhost:8233", "null"):
        refused = await http.options("/decode", headers={"Origin": origin, **preflight})
        assert refused.status == 403
        assert not [name for name in refused.headers if name.lower().startswith("access-control-")]


async def test_cors_headers_on_answers_only_for_the_ui_origin(
    http: TestClient[object, object], codec: PayloadEncryptionCodec
) -> None:
    sealed = body(await codec.encode([plain(MARKER)]))

    from_ui = await http.post("/decode", data=sealed, headers={**auth(), "Origin": UI})
    assert from_ui.status == 200
    assert from_ui.headers["Access-Control-Allow-Origin"] == UI

    from_elsewhere = await http.post("/decode", data=sealed, headers={**auth(), "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in from_elsewhere.headers


async def test_bad_requests_get_clear_answers(http: TestClient[object, object], codec: PayloadEncryptionCodec) -> None:
    not_json = await http.post("/decode", data="{not json", headers=auth())
    assert not_json.status == 400

    wrong_shape = await http.post("/decode", data=json.dumps({"payloads": "nope"}), headers=auth())
    assert wrong_shape.status == 400

    [sealed] = await codec.encode([plain(MARKER)])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    tampered = await http.post("/decode", data=body([sealed]), headers=auth())
    assert tampered.status == 400
    assert "tampered" in await tampered.text()

    unknown = await http.post("/default/describe", data=body([]), headers=auth())
    assert unknown.status == 404

    assert (await http.get("/decode")).status == 405


# --- the command ------------------------------------------------------------------------------


def test_the_cli_has_the_verb() -> None:
    args = build_parser().parse_args(["codec-server", "--state-dir", "/nonexistent"])

    assert args.handler is cmd_codec_server


async def test_the_server_never_makes_a_key_of_its_own(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, codec_server_token=TOKEN, codec_server_port=free_port())

    with pytest.raises(ConfigurationError, match="no payload key"):
        await run_codec_server(settings, asyncio.Event())
    assert not (tmp_path / "payload.key").exists()


async def test_start_up_serves_the_workers_key_and_warns_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = KeyEncryptionKey.generate()
    settings = Settings(state_dir=tmp_path, payload_key=key.to_text(), codec_server_port=free_port())
    stop = asyncio.Event()
    stop.set()  # start, report, and stop at once: the report comes before the wait

    await run_codec_server(settings, stop)

    out, err = capsys.readouterr()
    assert f"http://127.0.0.1:{settings.codec_server_port}" in out
    assert key.key_id in out
    assert "KEYREVOKE_CODEC_SERVER_TOKEN is not set: every request is refused (401)" in err
    assert key.to_text() not in out + err


async def test_the_browser_ui_signs_in_once_and_then_decodes_with_its_cookie(
    http: TestClient[object, object], codec: PayloadEncryptionCodec
) -> None:
    sealed = await codec.encode([plain(MARKER)])
    refused = await http.get("/login", params={"token": "not-the-token"})
    assert refused.status == 401
    assert "keyrevoke_codec" not in refused.cookies
    signed_in = await http.get("/login", params={"token": TOKEN})
    assert signed_in.status == 200
    assert signed_in.cookies["keyrevoke_codec"]["httponly"]
    session = signed_in.cookies["keyrevoke_codec"].value
    assert TOKEN not in session  # a random session id stands for the token; the token is never stored
    assert len(session) >= 40
    # The test client keeps the cookie, as the browser does; the UI sends no Authorization header.
    response = await http.post(
        "/default/decode", data=body(sealed), headers={"Origin": UI, "Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert parse(await response.text()) == [plain(MARKER)]
    http.session.cookie_jar.clear()
    anonymous = await http.post("/default/decode", data=body(sealed), headers={"Origin": UI})
    assert anonymous.status == 401


async def test_the_cookie_is_a_fresh_session_id_and_a_made_up_one_is_refused(
    http: TestClient[object, object], codec: PayloadEncryptionCodec
) -> None:
    first = (await http.get("/login", params={"token": TOKEN})).cookies["keyrevoke_codec"].value
    second = (await http.get("/login", params={"token": TOKEN})).cookies["keyrevoke_codec"].value
    assert first != second
    sealed = await codec.encode([plain(MARKER)])
    http.session.cookie_jar.clear()
    # The old design's cookie (the token itself) no longer opens anything.
    forged = await http.post("/default/decode", data=body(sealed), headers={"Cookie": f"keyrevoke_codec={TOKEN}"})
    assert forged.status == 401
    kept = await http.post("/default/decode", data=body(sealed), headers={"Cookie": f"keyrevoke_codec={first}"})
    assert kept.status == 200


async def test_the_access_log_never_holds_the_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`keyrevoke -v codec-server` logs every request; a login's query string is not in it."""
    key = KeyEncryptionKey.generate()
    settings = Settings(
        state_dir=tmp_path, payload_key=key.to_text(), codec_server_token=TOKEN, codec_server_port=free_port()
    )
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG)
    server = asyncio.create_task(run_codec_server(settings, stop))
    url = f"http://127.0.0.1:{settings.codec_server_port}"
    async with aiohttp.ClientSession() as client:
        for _ in range(100):
            try:
                async with client.get(f"{url}/login", params={"token": TOKEN}) as answer:
                    assert answer.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        async with client.get(f"{url}/login", params={"token": TOKEN + "-wrong"}) as answer:
            assert answer.status == 401
    stop.set()
    await server
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any('"GET /login" 200' in line for line in access), access
    assert any('"GET /login" 401' in line for line in access), access
    assert TOKEN not in caplog.text
