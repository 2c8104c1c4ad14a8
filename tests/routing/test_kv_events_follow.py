"""KV events: a ZMQ publisher emitting vLLM-format batches drives the router's index exactly.

The publisher side uses vLLM's own msgspec definitions (``tests/routing/vllm_wire.py``: events are tagged
maps with ``omit_defaults``, the batch an ``array_like`` array; 3 frames per message), including fields
this router does not read, so the test also shows that newer fields decode.
"""

from __future__ import annotations

import asyncio
import random

import msgspec
import pytest
import zmq
import zmq.asyncio

from autoscaler.adapters import kv_events
from autoscaler.core.phases import Phase
from autoscaler.routing import hashing
from autoscaler.routing import settings as cfg
from autoscaler.routing.router import AffinityRouter
from tests.routing.vllm_wire import (
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    ExternalBlockHash,
    KVEventBatch,
)

ENCODER = msgspec.msgpack.Encoder()


def _stored(hashes: list[ExternalBlockHash], *, medium: str | None = "GPU") -> BlockStored:
    return BlockStored(
        block_hashes=hashes,
        parent_block_hash=None,
        token_ids=list(range(16 * len(hashes))),
        block_size=16,
        lora_id=None,
        medium=medium,
        lora_name=None,
        extra_keys=[None] * len(hashes),
        kv_cache_spec_kind="full_attention",
    )


def test_decodes_a_vllm_encoded_batch_without_vllm() -> None:
    digest = hashing.precise_block_digests(list(range(100, 132)), block_tokens=16)
    batch = KVEventBatch(
        ts=1.5,
        events=[_stored([digest[0], 7]), BlockRemoved(block_hashes=[7], medium="GPU"), AllBlocksCleared()],
    )
    decoded = kv_events.decode_batch(ENCODER.encode(batch))
    assert decoded.ts == 1.5 and decoded.data_parallel_rank is None
    assert [type(e).__name__ for e in decoded.events] == ["BlockStored", "BlockRemoved", "AllBlocksCleared"]
    with pytest.raises(msgspec.DecodeError):
        kv_events.decode_batch(b"\x93not msgpack")


async def test_index_follows_a_zmq_publisher_exactly() -> None:
    router = AffinityRouter(cfg.RouterSettings(block_tokens=16, index_source=cfg.IndexSource.KV_EVENTS))
    router.add_endpoint("pod-a", phase=Phase.AGGREGATED, kv_capacity_tokens=16 * 10_000, now=0.0)
    context = zmq.asyncio.Context()
    publisher = context.socket(zmq.PUB)
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    subscriber = kv_events.KvEventSubscriber(router, context=context)
    subscriber.add("pod-a", f"tcp://127.0.0.1:{port}")
    seq = 0

    async def publish(batch: KVEventBatch) -> None:
        nonlocal seq
        await publisher.send_multipart([b"kv@pod-a@tiny", seq.to_bytes(8, "big"), ENCODER.encode(batch)])
        seq += 1

    try:
        # PUB drops messages until the subscription has propagated: publish empty batches until one lands.
        while subscriber.batches == 0:
            await publish(KVEventBatch(ts=0.0, events=[]))
            await asyncio.sleep(0.01)
        rng = random.Random(5)
        expected: set[int] = set()
        for step in range(60):
            if step == 30:
                events: list[BlockStored | BlockRemoved | AllBlocksCleared] = [AllBlocksCleared()]
                expected.clear()
            elif expected and rng.random() < 0.4:
                gone = rng.sample(sorted(expected), k=min(len(expected), rng.randint(1, 3)))
                events = [BlockRemoved(block_hashes=[h], medium="GPU") for h in gone]
                expected -= set(gone)
            else:
                new = [rng.getrandbits(64) for _ in range(rng.randint(1, 4))]
                as_bytes = rng.random() < 0.5  # VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0 sends raw digests
                digests = [h.to_bytes(32, "big") for h in new]
                events = [_stored(list(digests) if as_bytes else list(new))]
                events.append(_stored([rng.getrandbits(64)], medium="CPU"))  # offloaded copy: not indexed
                expected |= set(new)
            await publish(KVEventBatch(ts=float(step), events=events, data_parallel_rank=step % 2 or None))
        while subscriber.last_seq["pod-a"] < seq - 1:
            await asyncio.sleep(0.01)
        assert set(router.cached_blocks("pod-a")) == expected
        assert subscriber.gaps == 0 and subscriber.errors == 0
    finally:
        await subscriber.close()
        publisher.close(linger=0)
        context.term()
