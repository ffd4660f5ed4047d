"""``keyrevoke codec-server``: the Temporal remote codec protocol, so people can read encrypted payloads.

The Temporal web UI and CLI POST ``{"payloads": [...]}`` (protobuf JSON) to ``…/decode`` or
``…/encode`` and show what comes back. Only the last path segment chooses the operation, so the
server can sit under any prefix, such as ``/<namespace>/decode``.

Whoever can call ``/decode`` can read every payload, so every request must carry the token
``KEYREVOKE_CODEC_SERVER_TOKEN``: the ``temporal`` CLI as ``Authorization: Bearer <token>``
(``--codec-auth``); the web UI, which can only send cookies (its codec setting "include credentials"),
as the session cookie that ``GET /login?token=<token>``, opened once in the operator's browser, sets:
a random session id, never the token itself, valid for ``SESSION_SECONDS``. Without a configured token
every request is refused. The access log shows each request's path without its query string, so the
token of a login never reaches a log. Browsers may call it from the one origin in
``KEYREVOKE_CODEC_SERVER_CORS_ORIGIN``. The server speaks plain HTTP and listens on loopback unless told
otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import sys
import time
from collections import OrderedDict

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from keyrevoke.addresses import is_loopback_host
from keyrevoke.errors import ConfigurationError, SecretStoreError
from keyrevoke.payload_codec import PayloadEncryptionCodec, payload_codec_from_settings
from keyrevoke.settings import Settings

log = logging.getLogger(__name__)

# A history's worth of payloads in one request; the default 1 MiB is less than one large payload.
MAX_BODY_BYTES = 8 * 1024 * 1024
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
_OPERATIONS = ("decode", "encode")
COOKIE = "keyrevoke_codec"
#: how long a browser's sign-in lasts
SESSION_SECONDS = 12 * 3600
#: sessions kept at most; signing in beyond that ends the oldest
MAX_SESSIONS = 1000


class Sessions:
    """Browser sessions: random ids that stand for a valid token for a while; the token is never stored."""

    def __init__(self, seconds: float = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self._seconds = seconds
        self._limit = limit
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def open(self) -> str:
        session = secrets.token_urlsafe(32)
        self._expiry[session] = time.monotonic() + self._seconds
        while len(self._expiry) > self._limit:
            self._expiry.popitem(last=False)
        return session

    def valid(self, session: str) -> bool:
        # Compared in constant time against each live session, so timing tells nothing about an id.
        now = time.monotonic()
        found = False
        for known, expiry in list(self._expiry.items()):
            if expiry <= now:
                del self._expiry[known]
            elif hmac.compare_digest(known.encode(), session.encode("utf-8", errors="replace")):
                found = True
        return found


class RedactedAccessLogger(AbstractAccessLogger):
    """The access log without query strings (``/login?token=`` carries the token) or any header."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.3fs', request.remote, request.method, request.path, response.status, time)


def build_app(codec: PayloadEncryptionCodec, token: str | None, cors_origin: str) -> web.Application:
    """The codec server's application: ``token`` is the required bearer token (``None`` refuses all)."""
    expected = f"Bearer {token}".encode() if token else None
    sessions = Sessions()

    def cors_headers(request: web.Request) -> dict[str, str]:
        origin = request.headers.get(hdrs.ORIGIN)
        if not cors_origin or origin != cors_origin:
            return {}
        # Credentials allowed: the web UI authenticates with the cookie set by /login.
        return {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: cors_origin,
            hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true",
            hdrs.VARY: "Origin",
        }

    def valid(given: str) -> bool:
        return expected is not None and hmac.compare_digest(
            f"Bearer {given}".encode("utf-8", errors="replace"), expected
        )

    def authorized(request: web.Request) -> bool:
        if expected is None:
            return False
        given = request.headers.get(hdrs.AUTHORIZATION, "").encode("utf-8", errors="replace")
        if given:
            return hmac.compare_digest(given, expected)
        session = request.cookies.get(COOKIE, "")
        return bool(session) and sessions.valid(session)

    async def login(request: web.Request) -> web.StreamResponse:
        """Exchange the token for an HttpOnly session cookie, for the browser UI's codec requests."""
        if not valid(request.query.get("token", "")):
            log.warning("codec server: refused a login from %s", request.remote)
            return web.Response(status=401, text="unauthorized: wrong or missing token\n")
        answer = web.Response(
            text="signed in: the Temporal web UI can now decode payloads from this browser\n",
            headers={hdrs.CACHE_CONTROL: "no-store"},
        )
        answer.set_cookie(COOKIE, sessions.open(), httponly=True, samesite="Lax", path="/", max_age=SESSION_SECONDS)
        return answer

    async def preflight(request: web.Request) -> web.StreamResponse:
        headers = cors_headers(request)
        if not headers:
            return web.Response(status=403, text="origin not allowed\n")
        # Browsers send no credentials with a preflight, so it is answered before any authorization.
        headers.update(
            {
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "POST, OPTIONS",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: "600",
            }
        )
        return web.Response(status=204, headers=headers)

    async def codec_call(request: web.Request) -> web.StreamResponse:
        operation = request.path.rstrip("/").rsplit("/", 1)[-1]
        headers = {**cors_headers(request), hdrs.CACHE_CONTROL: "no-store"}
        if operation not in _OPERATIONS:
            return web.Response(status=404, text="not found: POST to …/decode or …/encode\n", headers=headers)
        if not authorized(request):
            headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="keyrevoke-codec"'
            reason = "a valid bearer token is required" if expected else "no KEYREVOKE_CODEC_SERVER_TOKEN is configured"
            log.warning("codec server: refused %r from %s (%s)", request.path, request.remote, reason)
            return web.Response(status=401, text=f"unauthorized: {reason}\n", headers=headers)
        payloads = Payloads()
        try:
            json_format.Parse(await request.text(), payloads)
        except (json_format.ParseError, UnicodeDecodeError):
            return web.Response(status=400, text="body is not Payloads in protobuf JSON\n", headers=headers)
        try:
            if operation == "decode":
                await codec.decode_wrapper(payloads)
            else:
                await codec.encode_wrapper(payloads)
        except SecretStoreError as error:
            return web.Response(status=400, text=f"{error}\n", headers=headers)
        return web.Response(text=json_format.MessageToJson(payloads), content_type="application/json", headers=headers)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/login", login)
    app.router.add_route("OPTIONS", "/{path:.*}", preflight)
    app.router.add_post("/{path:.*}", codec_call)
    return app


async def run_codec_server(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the codec for ``settings``' payload keys until ``stop`` is set."""
    # A key of its own would open nothing: the codec server only reads the key the workers use.
    codec = payload_codec_from_settings(settings, create=False)
    token = settings.codec_server_token.get_secret_value() if settings.codec_server_token else None
    app = build_app(codec, token or None, settings.codec_server_cors_origin)
    runner = web.AppRunner(app, access_log_class=RedactedAccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.codec_server_host, settings.codec_server_port)
        try:
            await site.start()
        except OSError as error:
            raise ConfigurationError(
                f"KEYREVOKE_CODEC_SERVER_HOST/PORT: cannot listen on "
                f"{settings.codec_server_host}:{settings.codec_server_port} ({error.strerror or error})"
            ) from None
        url = f"http://{settings.codec_server_host}:{settings.codec_server_port}"
        print(f"codec server on {url} (payload key {codec.current_key_id})", flush=True)
        print(f"CORS origin allowed: {settings.codec_server_cors_origin or '(none)'}", flush=True)
        if not token:
            print(
                "warning: KEYREVOKE_CODEC_SERVER_TOKEN is not set: every request is refused (401)",
                file=sys.stderr,
                flush=True,
            )
        if not is_loopback_host(settings.codec_server_host):
            print(
                "warning: listening beyond loopback over plain HTTP: tokens and decrypted payloads cross "
                "the network in the clear unless a TLS proxy is in front",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    finally:
        await runner.cleanup()
