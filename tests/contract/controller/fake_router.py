"""A fake of the router's ``/metrics``: per-endpoint in-flight requests and cached blocks, as the real
router names them (``autoscaler.adapters.proxy.metrics``), over real HTTP on 127.0.0.1."""

from __future__ import annotations

from aiohttp import web

from autoscaler.adapters.router_metrics import BLOCKS, IN_FLIGHT


class FakeRouterMetrics:
    def __init__(self) -> None:
        self.endpoints: dict[str, tuple[float, float]] = {}  # pod name -> (in flight, cached blocks)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.requests = 0  # how many times /metrics was read

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    async def start(self) -> FakeRouterMetrics:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        self.requests += 1
        lines = []
        for metric, index in ((IN_FLIGHT, 0), (BLOCKS, 1)):
            lines.append(f"# TYPE {metric} gauge")
            for name, values in sorted(self.endpoints.items()):
                lines.append(f'{metric}{{pool="llama",endpoint="{name}",phase="decode"}} {values[index]}')
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
