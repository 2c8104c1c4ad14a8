"""One replica's prefix cache: which chained prompt blocks it holds, pinned or free, evicted LRU.

A block is identified by its chained hash (equal hashes mean an identical prefix up to and including that
block, as in vLLM's prefix caching and Mooncake's ``hash_ids``), so a request's cached prefix is the run of
its leading hashes that are present. Blocks of running sequences are pinned (reference-counted) and cannot be
evicted; when the last sequence holding a block releases it the block becomes free and joins the LRU end.
Free blocks occupy KV space nobody else uses; the engine evicts the oldest when it needs that space.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PrefixCache"]


class PrefixCache:
    __slots__ = ("_free", "_pinned")

    def __init__(self) -> None:
        self._pinned: dict[int, int] = {}
        self._free: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, block: object) -> bool:
        """Whether ``block`` is cached (pinned or free); lets a driver see which blocks a ``pin`` adds."""
        return block in self._pinned or block in self._free

    def match(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of ``hashes`` are cached (pinned or free)."""
        pinned = self._pinned
        free = self._free
        count = 0
        for block in hashes:
            if block in pinned or block in free:
                count += 1
            else:
                break
        return count

    def pin(self, hashes: Sequence[int]) -> None:
        """A sequence now holds these blocks (caching the new ones)."""
        pinned = self._pinned
        free = self._free
        for block in hashes:
            held = pinned.get(block)
            if held is not None:
                pinned[block] = held + 1
            else:
                if block in free:
                    del free[block]
                pinned[block] = 1

    def unpin(self, hashes: Sequence[int]) -> None:
        """A sequence released these blocks: unreferenced ones become free, the tail evicted first."""
        pinned = self._pinned
        free = self._free
        for block in reversed(hashes):
            held = pinned[block] - 1
            if held:
                pinned[block] = held
            else:
                del pinned[block]
                free[block] = None

    def evict_to(self, max_free_blocks: int) -> list[int]:
        """Drop the least recently released free blocks until at most ``max_free_blocks`` remain.

        Returns the evicted blocks, oldest first (the emulator publishes them as vLLM ``BlockRemoved``).
        """
        excess = len(self._free) - max(0, max_free_blocks)
        pop = self._free.popitem
        return [pop(False)[0] for _ in range(excess)]  # False: the oldest end

    @property
    def free_blocks(self) -> int:
        return len(self._free)

    @property
    def pinned_blocks(self) -> int:
        return len(self._pinned)
