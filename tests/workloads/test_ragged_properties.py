"""Property tests: the vectorised ragged-array code agrees with plain loops on random small traces."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.sim.workloads import hashing, trace, transforms


@st.composite
def traces(draw: st.DrawFn) -> trace.Trace:
    rows = draw(st.lists(st.lists(st.integers(0, 6), max_size=5), min_size=1, max_size=12))
    gaps = draw(st.lists(st.floats(0.0, 5.0), min_size=len(rows), max_size=len(rows)))
    counts = [len(row) for row in rows]
    return trace.Trace(
        name="random",
        arrival_s=np.cumsum(gaps),
        prompt_tokens=[4 * c for c in counts],
        output_tokens=[1] * len(rows),
        block_offsets=np.concatenate(([0], np.cumsum(counts))),
        block_hashes=[h for row in rows for h in row],
        block_tokens=4,
    )


def _naive_hit_rate(value: trace.Trace) -> float:
    seen: set[int] = set()
    hits = total = 0
    for i in range(len(value)):
        row = [int(h) for h in value.hashes(i)]
        leading = True
        for h in row:
            leading = leading and h in seen
            hits += leading
        total += len(row)
        seen.update(row)
    return hits / total if total else 0.0


@settings(max_examples=200, deadline=None)
@given(traces())
def test_hit_rate_matches_a_plain_loop(value: trace.Trace) -> None:
    assert np.isclose(hashing.prefix_hit_rate_unbounded(value), _naive_hit_rate(value))


@settings(max_examples=100, deadline=None)
@given(traces(), st.floats(0.0, 30.0), st.floats(0.1, 30.0))
def test_truncate_keeps_exactly_the_rows_in_the_window(
    value: trace.Trace, start: float, width: float
) -> None:
    window = transforms.truncate(value, start_s=start, end_s=start + width)
    inside = [i for i in range(len(value)) if start <= value.arrival_s[i] < start + width]
    assert len(window) == len(inside)
    for j, i in enumerate(inside):
        assert list(window.hashes(j)) == list(value.hashes(i))
        assert window.arrival_s[j] == value.arrival_s[i] - start


@settings(max_examples=100, deadline=None)
@given(traces(), st.integers(1, 4), st.integers(0, 1000))
def test_superposed_copies_never_share_under_none(value: trace.Trace, copies: int, seed: int) -> None:
    stacked = transforms.superpose(value, copies=copies, rng=np.random.default_rng(seed), share="none")
    assert len(stacked) == copies * len(value)
    assert stacked.block_hashes is not None and value.block_hashes is not None
    assert np.unique(stacked.block_hashes).size == copies * np.unique(value.block_hashes).size
    assert sorted(np.diff(stacked.block_offsets)) == sorted(np.tile(np.diff(value.block_offsets), copies))  # type: ignore[arg-type]
