"""The picker in a data path: emulated vLLM engines, a forwarder in Envoy's role that sends each request
where the picker says, and a client streaming completions through it; the controller reads the picker's
metrics as it reads the proxy's."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from autoscaler.adapters import router_metrics
from autoscaler.adapters.prometheus import ROUTER_QUERIES
from autoscaler.config.profiles import load_profile
from autoscaler.emulator import server
from autoscaler.emulator.settings import EmulatorSettings
from tests.contract.epp.conftest import PickerFactory, metrics_text, until
from tests.contract.epp.forwarder import Forwarder
from tests.emulator.helpers import MODEL, stream

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def _engines(count: int) -> AsyncIterator[list[str]]:
    profile = load_profile("llama-3.1-8b/h100-tp1")
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for _ in range(count):
            sock = server.bind_socket("127.0.0.1", 0)
            await stack.enter_async_context(
                server.running(profile, EmulatorSettings(model=MODEL, speed=20), sock=sock)
            )
            urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
        yield urls


@contextlib.asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_streamed_completion_arrives_whole_and_the_picker_counts_it(
    picker_for: PickerFactory,
) -> None:
    async with (
        _engines(2) as urls,
        picker_for([{"url": u} for u in urls], scrape_interval_s=0.05) as running,
        _serving(Forwarder(running.stub).app) as gateway,
        httpx.AsyncClient(base_url=gateway, timeout=60) as client,
    ):
        body = {"model": MODEL, "prompt": "Once upon a time " * 50, "max_tokens": 12, "stream": True}
        for _ in range(3):
            result = await stream(client, "/v1/completions", body)
            assert result.done
            assert len(result.chunks) == 12
        await until(lambda: running.in_flight() == 0)
        metrics = await metrics_text(running.metrics_url)
        assert 'autoscaler_router_requests_total{phase="aggregated",pool="default"} 3.0' in metrics
        assert 'autoscaler_router_responses_total{code="200",pool="default"} 3.0' in metrics
        loads = router_metrics.parse(metrics)  # what the controller reads to choose and drain replicas
        assert set(loads) == set(running.picker.router.endpoints())
        assert [load.in_flight for load in loads.values()] == [0.0, 0.0]
        assert sum(load.cached_blocks > 0 for load in loads.values()) == 1  # one prefix, one engine
        for query in (ROUTER_QUERIES.requests, ROUTER_QUERIES.prefix_queried, ROUTER_QUERIES.prefix_hit):
            (family,) = re.findall(
                r"autoscaler_router_\w+", query
            )  # the controller's signals, as in proxy mode
            assert f"{family}{{" in metrics
