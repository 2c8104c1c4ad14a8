"""Real HTTP on 127.0.0.1 in the test's event loop: uvicorn serves the fake engines, the proxy itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from autoscaler.adapters.proxy.app import PROXY, Proxy, build_app, serving
from autoscaler.adapters.proxy.settings import ProxySettings
from autoscaler.cli.router import build_proxy


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a free port; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def refused_url() -> str:
    """A URL on which nothing listens: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


ProxyFactory = Callable[..., AbstractAsyncContextManager[tuple[str, Proxy]]]


@pytest.fixture
def proxy_for() -> ProxyFactory:
    """``async with proxy_for([{"url": ...}, ...], **settings) as (url, proxy)``: a running proxy."""

    @asynccontextmanager
    async def start(
        endpoints: list[dict[str, Any]] | dict[str, Any], **overrides: Any
    ) -> AsyncIterator[tuple[str, Proxy]]:
        """``endpoints``: a static list, or the whole discovery section."""
        discovery = {"static": endpoints} if isinstance(endpoints, list) else endpoints
        settings = ProxySettings.model_validate(
            {"endpoints": discovery, "scrape_interval_s": 0.05, **overrides}
        )
        app = build_app(build_proxy(settings, seed=7))
        async with serving(
            app, host="127.0.0.1", port=0, shutdown_timeout_s=5, idle_timeout_s=settings.idle_timeout_s
        ) as port:
            proxy = app[PROXY]
            await proxy.fleet.discovered.wait()
            yield f"http://127.0.0.1:{port}", proxy

    return start


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c
