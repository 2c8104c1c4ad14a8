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

    def blocks(self, slot: int) -> list[int]:
        """The slot's blocks, least recently used first."""
        return list(self._lrus[slot])

    def store(self, slot: int, hashes: Sequence[int], *, held: int = 0) -> None:
        """Record that ``slot`` holds ``hashes`` (a prompt's chain, in order), most recent first.

        ``held``: how many leading blocks the slot is known to hold already (``prefix_lengths`` said so
        and nothing changed since), which spares looking them up again.
        """
        lru = self._lrus[slot]
        tail = hashes[held:]
        if any(map(lru.__contains__, tail)):  # blocks past the known prefix were there already: rare
            self._store_around_holes(lru, slot, hashes, tail)
        else:  # the usual case: new blocks from the chain's end backwards, then the held prefix likewise
            owners = self._owners
            get = owners.get
            bit = 1 << slot
            for h in reversed(tail):  # item by item: OrderedDict.update from a dict is slower
                owners[h] = get(h, 0) | bit
                lru[h] = None
            if held:
                touch = lru.move_to_end
                for h in reversed(hashes[:held]):
                    touch(h)
        if len(lru) > self._capacity[slot]:
            self._evict(slot)

    def _store_around_holes(
        self, lru: OrderedDict[int, None], slot: int, hashes: Sequence[int], tail: Sequence[int]
    ) -> None:
        """``store`` when some blocks past the held prefix are there already: the new ones go in tail
        first, then every block already there is touched from the chain's end backwards."""
        new = [h for h in tail if h not in lru]
        owners = self._owners
        get = owners.get
        bit = 1 << slot
        for h in reversed(new):
            owners[h] = get(h, 0) | bit
            lru[h] = None
        fresh = set(new)
        touch = lru.move_to_end
        for h in reversed(hashes):
            if h not in fresh:
                touch(h)

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
        alive = get(hashes[0], 0)  # the slots holding every block so far
        if not alive:
            return {}
        matched: dict[int, int] = {}
        for i in range(1, len(hashes)):
            still = alive & get(hashes[i], 0)
            if still != alive:
                _record(matched, alive ^ still, i)
                if not still:
                    return matched
                alive = still
        _record(matched, alive, len(hashes))
        return matched

    def _evict(self, slot: int) -> None:
        """Drop the least recently used blocks beyond the slot's capacity."""
        lru = self._lrus[slot]
        owners = self._owners
        keep = ~(1 << slot)
        pop = lru.popitem
        for _ in range(len(lru) - self._capacity[slot]):
            h = pop(last=False)[0]
            mask = owners[h] & keep
            if mask:
                owners[h] = mask
            else:
                del owners[h]

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
