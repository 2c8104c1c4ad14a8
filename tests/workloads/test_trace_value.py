"""The Trace value checks its invariants once, at construction, and is immutable."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.sim.workloads import trace


def _trace(**overrides: object) -> trace.Trace:
    fields: dict[str, object] = {
        "name": "t",
        "arrival_s": [0.0, 1.0, 4.0],
        "prompt_tokens": [600, 10, 1_100],
        "output_tokens": [5, 1, 7],
        "block_offsets": [0, 2, 3, 6],
        "block_hashes": [0, 1, 0, 0, 1, 2],
    }
    fields.update(overrides)
    return trace.Trace(**fields)  # type: ignore[arg-type]


def test_columns_are_typed_read_only_arrays() -> None:
    value = _trace()
    assert value.arrival_s.dtype == np.float64 and value.prompt_tokens.dtype == np.int64
    assert len(value) == 3
    assert list(value.hashes(2)) == [0, 1, 2]
    assert value.duration_s == 4.0
    assert value.mean_rate == pytest.approx(0.75)
    with pytest.raises(ValueError, match="read-only"):
        value.arrival_s[0] = 5.0


def test_construction_copies_its_inputs() -> None:
    arrivals = np.array([0.0, 1.0, 4.0])
    value = _trace(arrival_s=arrivals)
    arrivals[2] = 9.0
    assert value.arrival_s[2] == 4.0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"prompt_tokens": [1, 2]}, "column lengths disagree"),
        ({"arrival_s": [0.0, 3.0, 2.0]}, "sorted ascending"),
        ({"arrival_s": [-1.0, 3.0, 4.0]}, "non-negative"),
        ({"arrival_s": [0.0, np.nan, 4.0]}, "non-finite"),
        ({"output_tokens": [1, -1, 1]}, "non-negative"),
        ({"block_hashes": None}, "come together"),
        ({"block_offsets": [0, 2, 6]}, "needs 4 entries"),
        ({"block_offsets": [0, 3, 2, 6]}, "non-decreasing"),
        ({"block_offsets": [0, 2, 3, 5]}, "end at len"),
        ({"block_tokens": 0}, "block_tokens must be positive"),
    ],
    ids=[
        "short column",
        "unsorted arrivals",
        "negative arrival",
        "nan arrival",
        "negative output",
        "offsets without hashes",
        "offsets of the wrong length",
        "decreasing offsets",
        "offsets not covering the hashes",
        "zero block size",
    ],
)
def test_invalid_traces_are_rejected(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _trace(**overrides)


def test_trace_without_hashes_says_so() -> None:
    value = _trace(block_offsets=None, block_hashes=None)
    assert not value.has_hashes
    with pytest.raises(ValueError, match="carries no block hashes"):
        value.hashes(0)


def test_empty_trace_has_no_rate() -> None:
    empty = trace.Trace(name="e", arrival_s=[], prompt_tokens=[], output_tokens=[])
    assert len(empty) == 0 and empty.duration_s == 0.0 and empty.mean_rate == 0.0
