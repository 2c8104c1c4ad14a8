"""Precise mode end to end: an engine's KV events over ZMQ steer token-id prompts to the engine that
holds their blocks, keyed by vLLM's own block hashes."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
import pytest
import zmq
import zmq.asyncio

from autoscaler.routing.hashing import precise_block_hashes
from tests.contract.router.conftest import ProxyFactory, serve
from tests.contract.router.fake_engine import FakeEngine
from tests.routing.vllm_wire import BlockStored, KVEventBatch

TOKENS = list(range(1000, 1064))  # 4 blocks of 16
TEXT = "the same long system prompt " * 3  # 84 bytes: the fake engine's /tokenize makes one token a byte


@pytest.mark.parametrize(
    ("prompt", "tokens", "hashing"),
    [
        ([*TOKENS, 7, 8, 9], TOKENS, {}),
        (TEXT, list(TEXT.encode()), {"tokenize_with_engine": True}),
    ],
    ids=["token ids in the request", "text tokenized by an engine"],
)
async def test_kv_events_steer_placement(
    proxy_for: ProxyFactory,
    client: httpx.AsyncClient,
    prompt: str | list[int],
    tokens: list[int],
    hashing: dict[str, object],
) -> None:
    engines = {name: FakeEngine(name) for name in ("a", "b")}
    context = zmq.asyncio.Context()
    publisher = context.socket(zmq.PUB)
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    stored = KVEventBatch(
        ts=0.0,
        events=[
            BlockStored(
                block_hashes=precise_block_hashes(tokens, block_tokens=16),
                parent_block_hash=None,
                token_ids=tokens,
                block_size=16,
                lora_id=None,
                medium="GPU",
                lora_name=None,
            )
        ],
    )
    try:
        async with (
            serve(engines["a"].app) as a_url,
            serve(engines["b"].app) as b_url,
            proxy_for(
                [
                    {"url": a_url, "name": "a", "kv_events": "tcp://127.0.0.1:1"},  # nothing publishes there
                    {"url": b_url, "name": "b", "kv_events": f"tcp://127.0.0.1:{port}"},
                ],
                hashing={"mode": "precise", "block_tokens": 16, **hashing},
            ) as (url, proxy),
        ):
            seq = 0
            while (
                proxy.router.index_size("b") < len(tokens) // 16
            ):  # PUB drops until the subscription lands: resend
                await publisher.send_multipart(
                    [b"kv@b@tiny", seq.to_bytes(8, "big"), msgspec.msgpack.encode(stored)]
                )
                seq += 1
                await asyncio.sleep(0.02)
            body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 2}).encode()
            for _ in range(3):
                r = await client.post(
                    f"{url}/v1/completions", content=body, headers={"content-type": "application/json"}
                )
                assert r.status_code == 200
            assert proxy.router.index_size("a") == 0  # precise mode learns from events only
    finally:
        publisher.close(linger=0)
        context.term()
    assert (len(engines["a"].bodies), len(engines["b"].bodies)) == (0, 3)
