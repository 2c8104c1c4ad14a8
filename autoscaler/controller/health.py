"""The controller's own HTTP endpoints and metrics: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` answers while the event loop runs (a wedged loop cannot answer). ``/readyz`` answers 200 once
the resources have been listed and the last election step reached the API server, leader or follower: a
follower is a ready hot standby. ``/metrics`` renders the controller's registry, to which other collectors
(the desired-replicas exporter) may be added.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.cycles = Counter(
            "autoscaler_controller_cycles",
            "Control cycles by outcome (decided, held, gone, follower, unreachable)",
            ["namespace", "autoscaler", "outcome"],
            registry=self.registry,
        )
        self.scales = Counter(
            "autoscaler_controller_scale_operations",
            "Replica count writes through the scale subresource",
            ["namespace", "autoscaler", "phase", "direction"],
            registry=self.registry,
        )
        self.cycle_seconds = Histogram(
            "autoscaler_controller_cycle_seconds",
            "Duration of one control cycle",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.leader = Gauge(
            "autoscaler_controller_leader", "1 while this replica holds the lease", registry=self.registry
        )
        self.resources = Gauge(
            "autoscaler_controller_resources", "InferenceAutoscalers being reconciled", registry=self.registry
        )


class HealthServer:
    def __init__(self, metrics: ControllerMetrics, *, ready: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, *, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: resources not listed or API server unreachable\n")

    async def _metrics_page(self, _: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
