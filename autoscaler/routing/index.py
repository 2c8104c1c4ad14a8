"""Which prefix blocks each endpoint probably holds: one LRU per endpoint, bounded by its KV capacity.

Endpoints occupy small integer *slots*. Besides one LRU (an ``OrderedDict`` of block hashes) per slot, the
index keeps, for every block, the bit mask of the slots that hold it. That makes the per-request question
("how many leading blocks of this prompt does each endpoint hold?") one dictionary lookup per block,
whatever the number of endpoints: walk the prompt's chained hashes in order, AND the owner masks, and an
endpoint's match ends at the first block whose mask lacks its bit.

A prompt's blocks are stored tail first, so its first blocks are the most recently used: under pressure the
LRU drops a prefix's tail before its head, as vLLM frees a request's blocks in reverse order. Dropping the
head first would make the surviving tail useless, since matches must be consecutive from the first block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence


class BlockIndex:
    __slots__ = ("_capacity", "_free", "_lrus", "_owners")

    def __init__(self) -> None:
        self._owners: dict[int, int] = {}  # block hash -> bit mask of the slots holding it
        self._lrus: dict[int, OrderedDict[int, None]] = {}  # slot -> its blocks, least recent first
        self._capacity: dict[int, int] = {}  # slot -> most blocks it holds
        self._free: list[int] = []  # slots given back by removed endpoints, reused lowest first

    def add_slot(self, *, capacity_blocks: int) -> int:
        """A new, empty slot holding at most ``capacity_blocks`` blocks (at least one)."""
        slot = self._free.pop(0) if self._free else len(self._lrus)
        self._lrus[slot] = OrderedDict()
        self._capacity[slot] = max(1, capacity_blocks)
        return slot

    def remove_slot(self, slot: int) -> None:
        self.clear(slot)
        del self._lrus[slot], self._capacity[slot]
        self._free.append(slot)
        self._free.sort()

    def set_capacity(self, slot: int, capacity_blocks: int) -> None:
        self._capacity[slot] = max(1, capacity_blocks)
        self._evict(slot)

    def size(self, slot: int) -> int:
        return len(self._lrus[slot])

    def capacity(self, slot: int) -> int:
        return self._capacity[slot]

    def blocks(self, slot: int) -> list[int]:
        """The slot's blocks, least recently used first."""
        return list(self._lrus[slot])

    def store(self, slot: int, hashes: Sequence[int]) -> None:
        """Record that ``slot`` holds ``hashes`` (a prompt's chain, in order), most recent first."""
        lru = self._lrus[slot]
        owners = self._owners
        bit = 1 << slot
        move = lru.move_to_end
        for h in reversed(hashes):
            if h in lru:
                move(h)
            else:
                lru[h] = None
                owners[h] = owners.get(h, 0) | bit
        if len(lru) > self._capacity[slot]:
            self._evict(slot)

    def remove(self, slot: int, hashes: Iterable[int]) -> None:
        lru = self._lrus[slot]
        for h in hashes:
            if h in lru:
                del lru[h]
                self._drop_owner(h, slot)

    def clear(self, slot: int) -> None:
        for h in self._lrus[slot]:
            self._drop_owner(h, slot)
        self._lrus[slot].clear()

    def prefix_lengths(self, hashes: Sequence[int]) -> dict[int, int]:
        """Slot -> number of leading blocks of ``hashes`` it holds, for every slot that holds at least one."""
        if not hashes:
            return {}
        get = self._owners.get
        alive = get(hashes[0], 0)
        if not alive:
            return {}
        matched: dict[int, int] = {}
        for i in range(1, len(hashes)):
            still = get(hashes[i], 0) & alive
            if still != alive:
                _record(matched, alive & ~still, i)
                if not still:
                    return matched
                alive = still
        _record(matched, alive, len(hashes))
        return matched

    def _evict(self, slot: int) -> None:
        lru = self._lrus[slot]
        excess = len(lru) - self._capacity[slot]
        for _ in range(excess):
            h, _none = lru.popitem(last=False)
            self._drop_owner(h, slot)

    def _drop_owner(self, h: int, slot: int) -> None:
        mask = self._owners[h] & ~(1 << slot)
        if mask:
            self._owners[h] = mask
        else:
            del self._owners[h]


def _record(matched: dict[int, int], mask: int, length: int) -> None:
    while mask:
        low = mask & -mask
        matched[low.bit_length() - 1] = length
        mask ^= low
