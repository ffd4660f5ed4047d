"""The worker's health endpoint: /healthz (the process serves) and /readyz (its workers run)."""

from __future__ import annotations

from aiohttp import web


class HealthServer:
    """A tiny HTTP server for Kubernetes' liveness and readiness probes."""

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - probes come from the kubelet
        self.port = port
        self.host = host
        self.ready = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        return web.Response(text="ready\n" if self.ready else "not ready\n", status=200 if self.ready else 503)
