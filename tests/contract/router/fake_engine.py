"""A small stand-in for a vLLM engine's OpenAI server, served over real HTTP in the contract tests.

It answers deterministically (``expected_stream`` and ``JSON_ANSWER`` give the exact bytes, so a test can
check the proxy relays them unchanged), records every request body it receives, honours vLLM's P/D
``kv_transfer_params`` step one, serves vLLM-named ``/metrics``, and counts streams cut off by a client
going away (``cancelled``), also while it holds requests back (``gate``) before answering. Any body the
proxy lets through gets a 200 (so a fuzzed 5xx can only be the proxy's own), streams are at most
``MAX_CHUNKS`` frames.

``python -m tests.contract.router.fake_engine --port N`` serves one in a process of its own, for the
fault tests that kill or stop the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# Odd spacing, an escaped and a raw non-ASCII character: a re-encoding proxy would change these bytes.
JSON_ANSWER = (
    b'{"id": "cmpl-1",  "object":"text_completion", "choices":[{"text":"h\\u00e9llo w\xc3\xa9rld"}]}\n'
)
KV_PARAMS = {
    "do_remote_prefill": True,
    "do_remote_decode": False,
    "remote_engine_id": "eng-1",
    "remote_block_ids": [1, 2, 3],
    "remote_host": "10.0.0.1",
    "remote_port": 5600,
}
MAX_CHUNKS = 64


def expected_stream(name: str, chunks: int) -> list[bytes]:
    """The SSE frames this engine sends for a streamed request with ``max_tokens=chunks``."""
    frames = [f'data: {{"engine": "{name}", "i": {i}, "text": "tök{i}"}}\n\n'.encode() for i in range(chunks)]
    frames.append(b"data: [DONE]\n\n")
    return frames


class FakeEngine:
    def __init__(
        self,
        name: str,
        *,
        waiting: float = 0,
        kv_usage: float = 0.1,
        chunk_delay_s: float = 0.0,
        answer_delay_s: float = 0.0,
        fail_after: int | None = None,
    ) -> None:
        self.name = name
        self.waiting = waiting
        self.kv_usage = kv_usage
        self.chunk_delay_s = chunk_delay_s
        self.answer_delay_s = answer_delay_s  # before the answer's first byte (a prefill, say)
        self.fail_after = fail_after  # frames sent before the engine "crashes" mid-stream
        self.gate: asyncio.Event | None = None  # when set up, requests wait for it before answering
        self.arrived = asyncio.Event()
        self.bodies: list[dict[str, Any]] = []
        self.cancelled = 0
        self.active = 0
        self.app = Starlette(
            routes=[
                Route("/v1/completions", self._generate, methods=["POST"]),
                Route("/v1/chat/completions", self._generate, methods=["POST"]),
                Route("/v1/models", self._models),
                Route("/tokenize", self._tokenize, methods=["POST"]),
                Route("/metrics", self._metrics),
            ]
        )

    async def _generate(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
            if await request.is_disconnected():
                self.cancelled += 1
                return Response(status_code=499)
        if self.answer_delay_s:
            await asyncio.sleep(self.answer_delay_s)
        params = body.get("kv_transfer_params")
        if isinstance(params, dict) and params.get("do_remote_decode"):
            return JSONResponse(
                {"id": "prefill", "choices": [{"text": "x"}], "kv_transfer_params": KV_PARAMS}
            )
        if not body.get("stream"):
            return Response(JSON_ANSWER, media_type="application/json")
        chunks = body.get("max_tokens")
        chunks = min(chunks, MAX_CHUNKS) if type(chunks) is int else 4
        return StreamingResponse(self._stream(chunks), media_type="text/event-stream")

    async def _stream(self, chunks: int) -> AsyncIterator[bytes]:
        self.active += 1
        finished = False
        try:
            for i, frame in enumerate(expected_stream(self.name, chunks)):
                if i == self.fail_after:
                    raise RuntimeError("engine crashed mid-stream")
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                yield frame
            finished = True
        finally:
            self.active -= 1
            if not finished:
                self.cancelled += 1

    async def _tokenize(self, request: Request) -> Response:
        """One token per byte of the prompt (or of "role\ncontent\n" per message)."""
        body = await request.json()
        text = body.get("prompt") or "".join(f"{m['role']}\n{m['content']}\n" for m in body["messages"])
        tokens = list(text.encode())
        return JSONResponse(
            {"count": len(tokens), "max_model_len": 4096, "tokens": tokens, "token_strs": None}
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    async def _metrics(self, request: Request) -> Response:
        labels = 'engine="0",model_name="tiny"'
        text = (
            f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{{labels}}} {self.waiting}\n"
            f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{{labels}}} {self.active}\n"
            f"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{{labels}}} {self.kv_usage}\n"
            "# TYPE vllm:cache_config_info gauge\n"
            f'vllm:cache_config_info{{block_size="16",num_gpu_blocks="4096",{labels}}} 1.0\n'
        )
        return Response(text, media_type="text/plain; version=0.0.4")


def completion(*, stream: bool = False, max_tokens: int = 4, prompt: str = "hello " * 100) -> bytes:
    return json.dumps(
        {"model": "tiny", "prompt": prompt, "stream": stream, "max_tokens": max_tokens}
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description="a fake vLLM engine on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="engine")
    parser.add_argument("--chunk-delay-s", type=float, default=0.0)
    parser.add_argument("--answer-delay-s", type=float, default=0.0)
    args = parser.parse_args()
    engine = FakeEngine(args.name, chunk_delay_s=args.chunk_delay_s, answer_delay_s=args.answer_delay_s)
    uvicorn.run(engine.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
