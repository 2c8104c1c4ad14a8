"""The block index: bounded by each capacity, consistent owners, exact consecutive prefix matches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.routing.index import BlockIndex

# An operation on one of three slots: store a chain, remove some blocks, or clear the slot.
chains = st.lists(st.integers(0, 40), min_size=0, max_size=12)
operations = st.lists(
    st.tuples(st.sampled_from(["store", "remove", "clear"]), st.integers(0, 2), chains), max_size=40
)


def _brute_force_prefix(index: BlockIndex, slots: list[int], hashes: list[int]) -> dict[int, int]:
    expected = {}
    for slot in slots:
        held = set(index.blocks(slot))
        n = 0
        while n < len(hashes) and hashes[n] in held:
            n += 1
        if n:
            expected[slot] = n
    return expected


@settings(max_examples=200, deadline=None)
@given(capacities=st.lists(st.integers(1, 10), min_size=3, max_size=3), ops=operations, probe=chains)
def test_index_never_exceeds_capacity_and_matches_exactly(
    capacities: list[int], ops: list[tuple[str, int, list[int]]], probe: list[int]
) -> None:
    index = BlockIndex()
    slots = [index.add_slot(capacity_blocks=c) for c in capacities]
    for op, which, hashes in ops:
        slot = slots[which]
        if op == "store":  # as the router does: it passes what the lookup said the slot already holds
            index.store(slot, hashes, held=index.prefix_lengths(hashes).get(slot, 0))
        elif op == "remove":
            index.remove(slot, hashes)
        else:
            index.clear(slot)
        for s, capacity in zip(slots, capacities, strict=True):
            assert index.size(s) <= capacity
    assert index.prefix_lengths(probe) == _brute_force_prefix(index, slots, probe)


def test_a_prefix_head_outlives_its_tail() -> None:
    """Stored tail first, so eviction drops the tail and the surviving head still matches."""
    index = BlockIndex()
    slot = index.add_slot(capacity_blocks=3)
    index.store(slot, [1, 2, 3, 4, 5])
    assert index.prefix_lengths([1, 2, 3, 4, 5]) == {slot: 3}
    index.store(slot, [9])
    assert index.blocks(slot) == [2, 1, 9]


def test_recently_used_prefix_survives_new_work() -> None:
    index = BlockIndex()
    slot = index.add_slot(capacity_blocks=4)
    index.store(slot, [1, 2])
    index.store(slot, [3, 4])
    index.store(slot, [1, 2], held=2)  # touched again: most recent
    index.store(slot, [5, 6])
    assert index.prefix_lengths([1, 2]) == {slot: 2}
    assert index.prefix_lengths([3, 4]) == {}


def test_removed_slot_is_forgotten_and_reused() -> None:
    index = BlockIndex()
    a = index.add_slot(capacity_blocks=8)
    b = index.add_slot(capacity_blocks=8)
    index.store(a, [1, 2])
    index.store(b, [1])
    index.remove_slot(a)
    assert index.prefix_lengths([1, 2]) == {b: 1}
    assert index.add_slot(capacity_blocks=8) == a
    assert index.prefix_lengths([1, 2]) == {b: 1}


def test_shrinking_capacity_evicts_at_once() -> None:
    index = BlockIndex()
    slot = index.add_slot(capacity_blocks=8)
    index.store(slot, list(range(8)))
    index.set_capacity(slot, 2)
    assert index.size(slot) == 2
    assert index.prefix_lengths(list(range(8))) == {slot: 2}
