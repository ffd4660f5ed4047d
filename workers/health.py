"""The worker's HTTP endpoint: /healthz (the process serves), /readyz (its workers run) and /metrics."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable

from aiohttp import web

from keyrevoke.errors import ConfigurationError

#: Prometheus' text exposition format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    """A tiny HTTP server for Kubernetes' liveness and readiness probes and Prometheus' scrapes.

    ``metrics`` renders the exposition; it may block (the keys gauge reads the ledger), so it runs
    in a thread. Without it, /metrics answers 404.
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.ready = False
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            if error.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"the worker's HTTP port {self.host}:{self.port} is taken (another worker on this host?): "
                    "set KEYREVOKE_WORKER_HTTP_PORT to a free port, or 0 to turn the endpoint off"
                ) from None
            raise ConfigurationError(
                f"the worker cannot listen on {self.host}:{self.port} ({error.strerror}): "
                "check KEYREVOKE_WORKER_HTTP_HOST and KEYREVOKE_WORKER_HTTP_PORT"
            ) from None

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        return web.Response(text="ready\n" if self.ready else "not ready\n", status=200 if self.ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound()
        body = await asyncio.to_thread(self.metrics)
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})
