"""What several benchmarks share, kept here so that no benchmark imports another or anything under tests/.

- ``percentile``: nearest-rank on the sorted values (the benchmarks' JSON has always used this rule);
- ``free_port``: a port on 127.0.0.1 nobody holds now (benchmarks bind loopback only);
- ``cpu_seconds``: user plus system CPU a process has used, from /proc (0 where there is none);
- the stub engine: an OpenAI completion endpoint that answers at once and a vLLM-named ``/metrics``, so a
  router's own cost is what remains; run it in its own process with
  ``python benchmarks/_harness.py --serve-engine PORT`` (``stub_engine_command``) and wait for it with
  ``wait_ready``.

Benchmarks run as scripts (``python benchmarks/x.py``), so they import this module as ``_harness``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

STUB_ANSWER = b'{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"ok"}]}'
STUB_METRICS = (
    "vllm:num_requests_waiting 0\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.1\n"
    'vllm:cache_config_info{block_size="16",num_gpu_blocks="4096"} 1\n'
)


def percentile(values: Sequence[float], q: float) -> float:
    """The value at rank ``q`` (0-1) of the sorted values, nearest rank rounding down."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stub_engine_command(port: int) -> list[str]:
    """The command that serves the stub engine on 127.0.0.1:``port`` until it is terminated."""
    return [sys.executable, __file__, "--serve-engine", str(port)]


async def wait_ready(client: httpx.AsyncClient, url: str, *, timeout_s: float = 30.0) -> None:
    """Until ``url`` answers 200 (a server just spawned is still importing)."""
    for _ in range(int(timeout_s / 0.05)):
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _serve_stub_engine(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def complete(request: Request) -> Response:
        await request.body()
        return Response(STUB_ANSWER, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(STUB_METRICS, media_type="text/plain; version=0.0.4")

    app = Starlette(routes=[Route("/v1/completions", complete, methods=["POST"]), Route("/metrics", metrics)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the benchmarks' stub engine")
    parser.add_argument("--serve-engine", type=int, required=True, metavar="PORT")
    _serve_stub_engine(parser.parse_args().serve_engine)
