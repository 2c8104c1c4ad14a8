"""The endpoint picker's servers: Envoy's ext_proc and gRPC health on one port, ``/metrics`` on another.

- ``envoy.service.ext_proc.v3.ExternalProcessor/Process``: one ``Exchange`` per stream; whatever ends the
  stream (the response's end, an error, Envoy cancelling it) releases its placement.
- ``grpc.health.v1.Health``: ``liveness`` is SERVING while the process answers; ``readiness``, the
  ext_proc service's own name and the overall status ("") are SERVING while the picker has a ready
  endpoint, as GIE's picker reports them (a gateway then stops sending it requests it can only refuse).
- HTTP ``/metrics`` (the proxy's series, the same the controller reads in proxy mode) and ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from aiohttp import web
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CONTENT_TYPE_LATEST

from autoscaler.adapters.epp.exchange import Exchange
from autoscaler.adapters.epp.picker import Picker
from autoscaler.adapters.epp.settings import EppSettings
from autoscaler.adapters.proxy.app import make_client, serving
from autoscaler.adapters.proxy.fleet import Fleet
from autoscaler.adapters.proxy.metrics import RouterMetrics
from autoscaler.adapters.until_signal import run_until_signal
from autoscaler.profiles.schema import Profile
from autoscaler.routing.router import AffinityRouter

log = logging.getLogger(__name__)

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
LIVENESS = "liveness"
READINESS = "readiness"
_READY_SERVICES = ("", READINESS, EXT_PROC_SERVICE)
_HEALTH_POLL_S = 0.2


class ExternalProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, picker: Picker) -> None:
        self._picker = picker

    async def Process(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        exchange = Exchange(self._picker)
        try:
            async for request in request_iterator:
                for answer in await exchange.on(request):
                    yield answer
                if exchange.ended:
                    return
        finally:
            exchange.close()


@dataclasses.dataclass(frozen=True, slots=True)
class Ports:
    grpc: int
    metrics: int


class EndpointPicker:
    """The router, its fleet and metrics, and the picker over them; ``serve`` runs the servers."""

    def __init__(self, settings: EppSettings, *, seed: int = 0, profile: Profile | None = None) -> None:
        self.settings = settings
        self.router = AffinityRouter(settings.router_settings(profile), seed=seed)
        self.fleet = Fleet(settings.proxy_settings(), self.router)
        self.metrics = RouterMetrics(pool=settings.pool, router=self.router)
        self.picker = Picker(
            settings, router=self.router, fleet=self.fleet, metrics=self.metrics, profile=profile
        )
        self.health = health_aio.HealthServicer()

    @contextlib.asynccontextmanager
    async def serve(self, *, host: str, grpc_port: int, metrics_port: int) -> AsyncIterator[Ports]:
        """Run everything until the block exits (ports 0: free ports); then stop taking new streams, give
        open ones ``shutdown_timeout_s``, and stop the fleet."""
        server = grpc.aio.server()
        external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
            ExternalProcessor(self.picker), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        bound = server.add_insecure_port(f"{host}:{grpc_port}")
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        client = make_client(self.settings.proxy_settings())
        await self.fleet.start(client)
        self.picker.gate.start()
        readiness = asyncio.create_task(self._follow_readiness(), name="epp:readiness")
        try:
            await server.start()
            async with serving(
                self._metrics_app(), host=host, port=metrics_port, shutdown_timeout_s=1.0
            ) as metrics:
                yield Ports(grpc=bound, metrics=metrics)
                await self.health.enter_graceful_shutdown()
                await server.stop(self.settings.shutdown_timeout_s)
        finally:
            readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readiness
            await server.stop(None)
            await self.picker.gate.stop()
            await self.fleet.stop()
            await client.close()

    async def _follow_readiness(self) -> None:
        ready: bool | None = None
        while True:
            now = bool(self.fleet.ready())
            if now is not ready:
                ready = now
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if now
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for service in _READY_SERVICES:
                    await self.health.set(service, status)
            await asyncio.sleep(_HEALTH_POLL_S)

    def _metrics_app(self) -> web.Application:
        async def prometheus(request: web.Request) -> web.Response:
            return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def health(request: web.Request) -> web.Response:
            ready = len(self.fleet.ready())
            return web.json_response(
                {"status": "ok" if ready else "no-ready-endpoint", "ready_endpoints": ready},
                status=200 if ready else 503,
            )

        app = web.Application()
        app.router.add_get("/metrics", prometheus)
        app.router.add_get("/health", health)
        return app


def run(settings: EppSettings, *, profile: Profile | None) -> None:
    """Serve until SIGTERM or SIGINT, let open streams finish, then end by that signal."""
    run_until_signal(functools.partial(_serve, settings, profile))


async def _serve(settings: EppSettings, profile: Profile | None, stop: asyncio.Future[int]) -> None:
    picker = EndpointPicker(settings, profile=profile)
    async with picker.serve(
        host=settings.host, grpc_port=settings.port, metrics_port=settings.metrics_port
    ) as ports:
        log.info(
            "endpoint picker: ext_proc and health on %s:%d, metrics on %d",
            settings.host,
            ports.grpc,
            ports.metrics,
        )
        signum = await stop
        log.info("signal %s: finishing open streams", signal.Signals(signum).name)
