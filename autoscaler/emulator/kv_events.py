"""KV-cache events in vLLM's wire format, published over ZMQ as the emulated prefix cache changes.

The encoding mirrors vLLM's msgspec structs (``vllm/distributed/kv_events.py``; reference/dependencies.md
"KV events wire format"; the structs are ``adapters.kv_wire``'s, which the router decodes) field for field,
so a consumer written for vLLM decodes them unchanged:

- an event is a msgpack map tagged ``"type"`` with defaults omitted: ``BlockStored`` always carries
  ``block_hashes``, ``parent_block_hash``, ``token_ids``, ``block_size``, ``lora_id``, ``medium`` and
  ``lora_name``; ``BlockRemoved`` carries ``block_hashes`` (one per event, as vLLM's block pool emits them)
  and ``medium``; ``AllBlocksCleared`` has no fields;
- a batch is the array ``[ts, events, data_parallel_rank]``;
- a message is three frames: topic, the batch's sequence number (8 bytes big-endian, from 0), payload;
- the PUB socket binds when the endpoint has ``*`` or ``::`` or is ipc/inproc, and connects otherwise (so a
  router can bind one SUB socket that every engine connects to), exactly as vLLM decides.

Block hashes are vLLM's (``autoscaler.routing.hashing``, sha256 over the token ids, low 64 bits), so the
engine model's prefix cache is keyed by the very hashes vLLM would publish. A block is announced when a
sequence first pins it (its admission: vLLM announces it as the block fills during that prefill) and
removed when the engine evicts it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence

import msgspec
import zmq

from autoscaler.adapters.kv_wire import BlockRemoved, BlockStored, Event, KVEventBatch
from autoscaler.engine.prefix_cache import PrefixCache

MEDIUM = "GPU"  # what vLLM's block pool reports, on CPU builds too


class PromptBlocks(list[int]):
    """A prompt's block hashes that also carry its token ids, so a stored block can be announced in full."""

    __slots__ = ("token_ids",)

    def __init__(self, hashes: Iterable[int], token_ids: Sequence[int]) -> None:
        super().__init__(hashes)
        self.token_ids = token_ids


class RecordingPrefixCache(PrefixCache):
    """The engine's prefix cache, recording which blocks each ``pin`` adds and each eviction drops."""

    __slots__ = ("block_size", "events")

    def __init__(self, *, block_size: int) -> None:
        super().__init__()
        self.block_size = block_size
        self.events: list[Event] = []

    def pin(self, hashes: Sequence[int]) -> None:
        new = [i for i, block in enumerate(hashes) if block not in self]
        super().pin(hashes)
        if new and isinstance(hashes, PromptBlocks):
            self._stored(hashes, new)

    def evict_to(self, max_free_blocks: int) -> list[int]:
        evicted = super().evict_to(max_free_blocks)
        self.events.extend(BlockRemoved(block_hashes=[block], medium=MEDIUM) for block in evicted)
        return evicted

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def _stored(self, hashes: PromptBlocks, new: list[int]) -> None:
        """One ``BlockStored`` per run of consecutive new blocks, chained to the block before the run."""
        size = self.block_size
        start = 0
        for k in range(1, len(new) + 1):
            if k == len(new) or new[k] != new[k - 1] + 1:
                first, last = new[start], new[k - 1]
                self.events.append(
                    BlockStored(
                        block_hashes=[*hashes[first : last + 1]],
                        parent_block_hash=hashes[first - 1] if first else None,
                        token_ids=list(hashes.token_ids[first * size : (last + 1) * size]),
                        block_size=size,
                        lora_id=None,
                        medium=MEDIUM,
                        lora_name=None,
                    )
                )
                start = k


def binds(endpoint: str) -> bool:
    """Whether vLLM's publisher binds ``endpoint`` (else it connects)."""
    return "*" in endpoint or "::" in endpoint or endpoint.startswith(("ipc://", "inproc://"))


class KvEventPublisher:
    """A ZMQ PUB socket sending one batch per call, numbered from 0."""

    def __init__(
        self, endpoint: str, *, topic: str = "", context: zmq.Context[zmq.Socket[bytes]] | None = None
    ):
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, 100_000)  # vLLM's default ``hwm``
        self._socket.setsockopt(zmq.LINGER, 0)
        if binds(endpoint):
            self._socket.bind(endpoint)
        else:
            self._socket.connect(endpoint)
        self._topic = topic.encode("utf-8")
        self._encoder = msgspec.msgpack.Encoder()
        self.seq = 0

    def publish(self, events: list[Event]) -> None:
        if not events:
            return
        payload = self._encoder.encode(KVEventBatch(ts=time.time(), events=events, data_parallel_rank=0))
        with contextlib.suppress(zmq.Again):  # a subscriber that cannot keep up loses batches, as with vLLM
            self._socket.send_multipart((self._topic, self.seq.to_bytes(8, "big"), payload), zmq.NOBLOCK)
        self.seq += 1

    def close(self) -> None:
        self._socket.close(linger=0)
