"""KV events: a ZMQ SUB bound by the test receives vLLM-format batches keyed by vLLM's block hashes."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
import zmq
import zmq.asyncio

from autoscaler.adapters.kv_events import decode_batch
from autoscaler.emulator.kv_events import binds
from autoscaler.emulator.server import KvEventsConfig
from autoscaler.routing import hashing
from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL

BLOCK = 16  # the H100 profile's block size
FIRST = list(range(1000, 1070))  # 4 full blocks and 6 tokens
SECOND = FIRST[:40] + list(range(5000, 5060))  # shares 2 blocks, then 4 of its own


async def _batches(sub: zmq.asyncio.Socket, count: int) -> list[tuple[bytes, int, list[object]]]:
    """Receive ``count`` messages. Start it before the emulator publishes: a SUB socket attaches a newly
    connected publisher (and sends it the subscription) only while it is being read."""
    out = []
    for _ in range(count):
        topic, seq, payload = await asyncio.wait_for(sub.recv_multipart(), 5)
        out.append((topic, int.from_bytes(seq, "big"), msgspec.msgpack.decode(payload)))
        assert decode_batch(payload).events  # the router's decoder reads it too
    return out


@pytest.fixture
def sub() -> tuple[zmq.asyncio.Socket, str]:
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.SUBSCRIBE, b"kv")
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    yield socket, f"tcp://127.0.0.1:{port}"
    socket.close(linger=0)
    context.term()


async def test_stored_blocks_carry_vllm_hashes_tokens_and_parents(start: Start, sub: tuple) -> None:
    socket, endpoint = sub
    async with start(speed=50, kv_events=KvEventsConfig(endpoint, topic="kv")) as emu:
        receiving = asyncio.create_task(_batches(socket, 2))
        await asyncio.sleep(0.3)  # the PUB connects to us: let our subscription reach it (ZMQ's slow joiner)
        await emu.client.post("/v1/completions", json={"model": MODEL, "prompt": FIRST, "max_tokens": 2})
        await emu.client.post("/v1/completions", json={"model": MODEL, "prompt": SECOND, "max_tokens": 2})
        (topic0, seq0, batch0), (_, seq1, batch1) = await receiving

    first = hashing.precise_block_hashes(FIRST, block_tokens=BLOCK)
    second = hashing.precise_block_hashes(SECOND, block_tokens=BLOCK)
    assert first[:2] == second[:2] and len(first) == 4 and len(second) == 6
    assert (topic0, seq0, seq1) == (b"kv", 0, 1)
    ts, events, dp_rank = batch0
    assert isinstance(ts, float) and dp_rank == 0
    assert events == [
        {
            "type": "BlockStored",
            "block_hashes": first,
            "parent_block_hash": None,
            "token_ids": FIRST[:64],
            "block_size": BLOCK,
            "lora_id": None,
            "medium": "GPU",
            "lora_name": None,
        }
    ]
    (stored,) = batch1[1]
    assert stored["block_hashes"] == second[2:]  # the shared prefix was already there
    assert stored["parent_block_hash"] == second[1]
    assert stored["token_ids"] == SECOND[32:96]


async def test_evicted_blocks_are_removed_oldest_first(start: Start, sub: tuple) -> None:
    socket, endpoint = sub
    other = list(range(7000, 7100))  # 6 blocks; with 10 blocks of KV one of FIRST's 4 free blocks must go
    async with start(
        speed=50, num_gpu_blocks_override=10, kv_events=KvEventsConfig(endpoint, topic="kv")
    ) as emu:
        receiving = asyncio.create_task(_batches(socket, 2))
        await asyncio.sleep(0.3)
        await emu.client.post("/v1/completions", json={"model": MODEL, "prompt": FIRST, "max_tokens": 2})
        await emu.client.post("/v1/completions", json={"model": MODEL, "prompt": other, "max_tokens": 2})
        batches = await receiving

    events = [event for _, _, (_, batch_events, _) in batches for event in batch_events]
    removed = [event for event in events if event["type"] == "BlockRemoved"]
    # The last block of a finished prompt is released first, so it is the first evicted (as vLLM frees tails).
    assert removed == [
        {
            "type": "BlockRemoved",
            "block_hashes": [hashing.precise_block_hashes(FIRST, block_tokens=BLOCK)[3]],
            "medium": "GPU",
        }
    ]


@pytest.mark.parametrize(
    ("endpoint", "bind"),
    [
        ("tcp://*:5557", True),
        ("tcp://[::]:5557", True),
        ("ipc:///tmp/kv", True),
        ("inproc://kv", True),
        ("tcp://127.0.0.1:5557", False),
        ("tcp://router.svc:5557", False),
    ],
)
def test_publisher_binds_or_connects_as_vllm_decides(endpoint: str, bind: bool) -> None:
    assert binds(endpoint) is bind
