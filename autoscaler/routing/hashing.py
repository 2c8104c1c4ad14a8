"""Chained prefix-block hashes of a prompt, the keys of the router's block index.

Two families, both chained so that block ``i``'s hash stands for the whole prefix up to and including it
(two prompts share block ``i``'s hash only if they share every block before it):

- **approximate**: fixed-size chunks of the prompt's token ids (or of its UTF-8 text when no tokenizer is
  at hand), chained with a fast non-cryptographic 64-bit hash computed in C (the per-request budget is
  tens of microseconds), the same in every process, and only meaningful to this router, which learns what
  each endpoint caches from its own placements.
- **precise**: exactly vLLM's prefix-cache block hashes (``vllm/v1/core/kv_cache_utils.py``), so that the
  keys match the ones vLLM publishes in its KV events: ``H((parent_digest or NONE_HASH, tuple(tokens),
  extra_keys))`` with ``H`` = SHA-256 over pickle protocol 5 (``sha256``) or over canonical CBOR
  (``sha256_cbor``), ``NONE_HASH = H("vllm-none-hash")`` (vLLM's seed when ``PYTHONHASHSEED`` is unset; pass
  ``seed`` when the engines set it), and the published integer form is the digest's low 64 bits read
  big-endian. Only full blocks are hashed, as vLLM does.

A partial trailing chunk is never hashed: no engine caches a partial block.
"""

from __future__ import annotations

import enum
import hashlib
import pickle
import zlib
from collections.abc import Callable, Sequence

_MASK64 = (1 << 64) - 1
VLLM_DEFAULT_SEED = "vllm-none-hash"


class PreciseAlgo(enum.StrEnum):
    """vLLM's ``--prefix-caching-hash-algo`` values this router can reproduce."""

    SHA256 = "sha256"
    SHA256_CBOR = "sha256_cbor"


def approximate_token_hashes(token_ids: Sequence[int], *, block_tokens: int) -> list[int]:
    """Chained 64-bit hashes of each full ``block_tokens``-token chunk of ``token_ids``.

    Python's tuple hash (xxHash-based since 3.8): computed in C, and unlike ``hash()`` of text or bytes it
    does not depend on ``PYTHONHASHSEED``, so it is the same in every process.
    """
    if block_tokens <= 0:
        raise ValueError(f"block size must be positive, got {block_tokens} tokens")
    tokens = list(token_ids)
    parent = 0
    hashes: list[int] = []
    for start in range(0, len(tokens) - block_tokens + 1, block_tokens):
        parent = hash((parent, tuple(tokens[start : start + block_tokens]))) & _MASK64
        hashes.append(parent)
    return hashes


def approximate_text_hashes(text: str, *, block_chars: int) -> list[int]:
    """Chained 64-bit hashes of each full ``block_chars``-byte chunk of the UTF-8 prompt text.

    The running CRC-32 and Adler-32 of the whole prefix, side by side: both computed in C and chained by
    construction (each continues from the previous block's value). Bytes rather than characters: a chunk
    boundary inside a multi-byte character is harmless, and slicing a memoryview copies nothing.
    """
    if block_chars <= 0:
        raise ValueError(f"block size must be positive, got {block_chars} bytes")
    data = memoryview(text.encode("utf-8"))
    crc, adler = zlib.crc32, zlib.adler32
    c, a = 0, 1
    hashes: list[int] = []
    for start in range(0, len(data) - block_chars + 1, block_chars):
        chunk = data[start : start + block_chars]
        c, a = crc(chunk, c), adler(chunk, a)
        hashes.append(c << 32 | a)
    return hashes


def _sha256_pickle(obj: object) -> bytes:
    return hashlib.sha256(pickle.dumps(obj, protocol=5)).digest()


def _sha256_cbor(obj: object) -> bytes:
    import cbor2  # only engines configured with sha256_cbor need it

    return hashlib.sha256(cbor2.dumps(obj, canonical=True)).digest()


_DIGESTS: dict[PreciseAlgo, Callable[[object], bytes]] = {
    PreciseAlgo.SHA256: _sha256_pickle,
    PreciseAlgo.SHA256_CBOR: _sha256_cbor,
}


def none_hash(algo: PreciseAlgo = PreciseAlgo.SHA256, seed: str = VLLM_DEFAULT_SEED) -> bytes:
    """vLLM's ``NONE_HASH``: the parent digest of a prompt's first block."""
    return _DIGESTS[algo](seed)


def precise_block_digests(
    token_ids: Sequence[int],
    *,
    block_tokens: int,
    algo: PreciseAlgo = PreciseAlgo.SHA256,
    seed: str = VLLM_DEFAULT_SEED,
    extra_keys: Sequence[tuple[object, ...] | None] = (),
) -> list[bytes]:
    """vLLM's 32-byte block hashes of every full block; ``extra_keys[i]`` (if given) is block ``i``'s."""
    if block_tokens <= 0:
        raise ValueError(f"block size must be positive, got {block_tokens} tokens")
    digest = _DIGESTS[algo]
    parent = none_hash(algo, seed)
    digests: list[bytes] = []
    for i, start in enumerate(range(0, len(token_ids) - block_tokens + 1, block_tokens)):
        extra = extra_keys[i] if i < len(extra_keys) else None
        parent = digest((parent, tuple(token_ids[start : start + block_tokens]), extra))
        digests.append(parent)
    return digests


def external_hash(digest: bytes) -> int:
    """The integer form vLLM publishes in KV events (``VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1``)."""
    return int.from_bytes(digest, "big") & _MASK64


def precise_block_hashes(
    token_ids: Sequence[int],
    *,
    block_tokens: int,
    algo: PreciseAlgo = PreciseAlgo.SHA256,
    seed: str = VLLM_DEFAULT_SEED,
) -> list[int]:
    """vLLM's block hashes of ``token_ids`` in the integer form its KV events carry."""
    return [
        external_hash(d)
        for d in precise_block_digests(token_ids, block_tokens=block_tokens, algo=algo, seed=seed)
    ]
