"""vLLM KV-cache events over ZMQ, decoded without vLLM, applied to the router's block index (precise mode).

Wire format (vLLM ``vllm/distributed/kv_events.py``; reference/dependencies.md "KV events wire format"; the
structs are ``kv_wire``'s):

- a PUB socket sends 3 frames per batch: ``topic``, ``seq`` (8 bytes, big-endian, per publisher from 0)
  and the payload;
- the payload is a msgpack **array** ``[ts, events, data_parallel_rank?]`` (``array_like``, the rank
  omitted when None);
- each event is a msgpack **map** tagged by ``"type"``: ``BlockStored`` (``block_hashes``,
  ``parent_block_hash``, ``token_ids``, ``block_size``, ``lora_id``, ``medium``, ``lora_name`` and optional
  extras), ``BlockRemoved`` (``block_hashes``, ``medium``) or ``AllBlocksCleared``;
- a block hash is an int (the digest's low 64 bits, vLLM's default) or the raw 32-byte digest; both are
  reduced here to the int form, the key the router's precise hashes use.

Unknown fields are ignored so newer vLLM versions decode. Only blocks on the GPU (``medium`` "GPU" or
absent) enter the index: CPU-offloaded copies carry no tokens and are not what prefix caching hits first.

One SUB socket per endpoint (llm-d's "pod discovery" mode: each engine binds ``tcp://*:5557`` and the
router connects to every engine), so a batch's endpoint is the socket it arrived on. A jump in ``seq``
means the router missed batches; it is counted (``gaps``) and the LRU bound keeps the index sane until the
engine's own events bring it back in line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

import msgspec
import zmq
import zmq.asyncio

from autoscaler.adapters.kv_wire import (
    BlockHash,
    BlockRemoved,
    BlockStored,
    KVEventBatch,
    decode_batch,
)
from autoscaler.routing.hashing import external_hash

log = logging.getLogger(__name__)

class BlockSink(Protocol):
    """Where decoded events go: the router's index (``AffinityRouter`` implements it)."""

    def blocks_stored(self, name: str, block_hashes: Sequence[int]) -> None: ...

    def blocks_removed(self, name: str, block_hashes: Sequence[int]) -> None: ...

    def all_blocks_cleared(self, name: str) -> None: ...


def _as_ints(hashes: list[BlockHash]) -> list[int]:
    return [h if isinstance(h, int) else external_hash(h) for h in hashes]


def _on_gpu(medium: str | None) -> bool:
    return medium is None or medium.upper() == "GPU"


def apply_batch(batch: KVEventBatch, *, endpoint: str, sink: BlockSink) -> None:
    """Apply one batch's events, in order, to ``endpoint``'s blocks."""
    for event in batch.events:
        if isinstance(event, BlockStored):
            if _on_gpu(event.medium):
                sink.blocks_stored(endpoint, _as_ints(event.block_hashes))
        elif isinstance(event, BlockRemoved):
            if _on_gpu(event.medium):
                sink.blocks_removed(endpoint, _as_ints(event.block_hashes))
        else:
            sink.all_blocks_cleared(endpoint)


class KvEventSubscriber:
    """One SUB socket and one reader task per endpoint, feeding ``sink``; start and stop per endpoint."""

    def __init__(self, sink: BlockSink, *, context: zmq.asyncio.Context | None = None) -> None:
        self._sink = sink
        self._context = context or zmq.asyncio.Context.instance()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self.batches = 0  # batches applied, all endpoints
        self.gaps = 0  # times a publisher's sequence number jumped (batches lost)
        self.errors = 0  # payloads that did not decode
        self.last_seq: dict[str, int] = {}  # endpoint -> sequence number of the last batch received

    def endpoints(self) -> list[str]:
        return list(self._readers)

    def add(self, name: str, address: str, *, topic: bytes = b"") -> None:
        """Subscribe to ``address`` (``tcp://host:5557``) for ``name``; replaces an earlier subscription."""
        self.remove(name)
        socket = self._context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SUBSCRIBE, topic)
        socket.connect(address)
        self._readers[name] = asyncio.get_running_loop().create_task(
            self._read(name, socket), name=f"kv-events:{name}"
        )

    def remove(self, name: str) -> None:
        task = self._readers.pop(name, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._readers.values())
        for name in list(self._readers):
            self.remove(name)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self, name: str, socket: zmq.asyncio.Socket) -> None:
        expected: int | None = None
        try:
            while True:
                frames = await socket.recv_multipart()
                if len(frames) >= 3:
                    seq = int.from_bytes(frames[-2], "big", signed=True)
                    if expected is not None and seq != expected:
                        self.gaps += 1
                        log.warning("kv events from %s: expected batch %d, got %d", name, expected, seq)
                    expected = seq + 1
                    self.last_seq[name] = seq
                try:
                    batch = decode_batch(frames[-1])
                except msgspec.DecodeError as err:
                    self.errors += 1
                    log.warning("kv events from %s: undecodable batch: %s", name, err)
                    continue
                apply_batch(batch, endpoint=name, sink=self._sink)
                self.batches += 1
        finally:
            socket.close(linger=0)
