"""Serving the external metrics API over TLS on a free port of 127.0.0.1, in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from autoscaler.adapters.external_metrics import TlsFiles, external_metrics_server
from autoscaler.adapters.publishing import DesiredReplicasBoard


@asynccontextmanager
async def serving(board: DesiredReplicasBoard, tls: TlsFiles) -> AsyncIterator[str]:
    """Serve the API on a free port; yields its base URL."""
    server = external_metrics_server(board, host="127.0.0.1", port=0, tls=tls)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
