"""An OpenAI-style engine whose per-request timings follow a known time model, for ``autoscaler profile``.

It streams ``max_tokens`` text chunks at once and reports vLLM's per-request metrics
(``--enable-per-request-metrics``) computed from ``MODEL``: a request's prefill takes
``base + per_token * n + per_pair * n^2`` and its mean ITL ``base + per_seq * B + per_ctx * B * (n + out/2)``
where ``B`` is how many requests arrived within ``BATCH_WINDOW_S`` of it (the profiler starts a batch's
requests together and the next batch only after they all finished; each request first waits that long).
``/metrics`` serves ``vllm:cache_config_info`` as vLLM 0.32 does. It runs in a thread with its own event
loop, so the CLI under test can call ``asyncio.run`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = {"base": 2e-3, "per_token": 2e-5, "per_pair": 1e-8, "per_seq": 3e-4, "per_ctx": 1e-6}
BLOCK_SIZE, NUM_BLOCKS, BYTES_PER_TOKEN = 32, 100, 1024
BATCH_WINDOW_S = 0.05


class TimedEngine:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.app = Starlette(
            routes=[
                Route("/v1/completions", self._complete, methods=["POST"]),
                Route("/v1/models", self._models),
                Route("/metrics", self._metrics),
            ]
        )

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        arrived = time.monotonic()
        self.arrivals.append(arrived)
        await asyncio.sleep(BATCH_WINDOW_S)
        batch = sum(1 for t in self.arrivals if abs(t - arrived) < BATCH_WINDOW_S)
        n, out = len(body["prompt"]), int(body["max_tokens"])
        m = MODEL
        prefill = m["base"] + m["per_token"] * n + m["per_pair"] * n * n
        itl = m["base"] + m["per_seq"] * batch + m["per_ctx"] * batch * (n + out / 2)
        metrics = {"queue_time_ms": 0.01, "time_to_first_token_ms": prefill * 1e3}
        if out > 1:
            metrics["mean_itl_ms"] = itl * 1e3
        return StreamingResponse(self._stream(out, metrics), media_type="text/event-stream")

    async def _stream(self, out: int, metrics: dict[str, float]) -> AsyncIterator[bytes]:
        for i in range(out):
            yield f"data: {json.dumps({'choices': [{'index': 0, 'text': f' w{i}'}]})}\n\n".encode()
        usage = {"prompt_tokens": 1, "completion_tokens": out, "total_tokens": out + 1}
        yield f"data: {json.dumps({'choices': [], 'usage': usage, 'metrics': metrics})}\n\n".encode()
        yield b"data: [DONE]\n\n"

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "max_model_len": 256}]})

    async def _metrics(self, request: Request) -> Response:
        labels = (
            f'block_size="{BLOCK_SIZE}",num_gpu_blocks="{NUM_BLOCKS}",'
            f'kv_cache_memory_bytes="{NUM_BLOCKS * BLOCK_SIZE * BYTES_PER_TOKEN}",'
            'engine="0",model_name="fake"'
        )
        text = f"# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{{labels}}} 1.0\n"
        return Response(text, media_type="text/plain; version=0.0.4")


@contextlib.contextmanager
def running(engine: TimedEngine) -> Iterator[str]:
    """Serve ``engine`` on a free port from a background thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(engine.app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake engine did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
