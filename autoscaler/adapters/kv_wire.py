"""vLLM's KV-cache event structs (``vllm/distributed/kv_events.py``), the one definition both sides use.

The router decodes them (``kv_events``) and the emulator encodes them (``emulator.kv_events``). Decoding
accepts what any vLLM version sends: a block hash is an int (the digest's low 64 bits, vLLM's default) or
the raw 32-byte digest, fields newer than the sender default, unknown ones are ignored. Encoding writes every
field, defaults included, as vLLM's own structs (which have no defaults) do: an event is a msgpack map
tagged ``"type"``, a batch the array ``[ts, events, data_parallel_rank]``.
"""

from __future__ import annotations

import msgspec

BlockHash = int | bytes


class KVCacheEvent(msgspec.Struct, tag=True, gc=False):
    """vLLM's base event: a map tagged with the class name."""


class BlockStored(KVCacheEvent):
    block_hashes: list[BlockHash]
    parent_block_hash: BlockHash | None = None
    token_ids: list[int] = []
    block_size: int = 0
    lora_id: int | None = None
    medium: str | None = None
    lora_name: str | None = None


class BlockRemoved(KVCacheEvent):
    block_hashes: list[BlockHash]
    medium: str | None = None


class AllBlocksCleared(KVCacheEvent):
    pass


Event = BlockStored | BlockRemoved | AllBlocksCleared


class KVEventBatch(msgspec.Struct, array_like=True, gc=False):
    ts: float
    events: list[Event]
    data_parallel_rank: int | None = None


_decoder = msgspec.msgpack.Decoder(KVEventBatch)


def decode_batch(payload: bytes) -> KVEventBatch:
    """Decode one payload frame; raises ``msgspec.DecodeError`` (a ``ValueError``) when malformed."""
    return _decoder.decode(payload)
