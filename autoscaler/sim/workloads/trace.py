"""A request trace: arrival times, token lengths and, optionally, chained prefix-block hashes.

This is the one value every workload source produces (file loaders, synthetic generators, transforms) and the
simulator consumes. It is columnar (numpy arrays) because traces hold tens of thousands of requests and the
simulator and transforms work on whole columns.

Invariants, checked once at construction so consumers never re-check:
- ``arrival_s`` is float64, sorted ascending, finite and non-negative: seconds from the trace start (t = 0);
- ``prompt_tokens`` and ``output_tokens`` are int64, non-negative, one per request;
- block hashes, when present, are ragged: request ``i``'s chained prefix-block hashes are
  ``block_hashes[block_offsets[i]:block_offsets[i + 1]]``, one hash per ``block_tokens`` prompt tokens (the
  last block may be partial). Hashes are chained: equal hashes mean an identical prefix up to and including
  that block, so "seen before" alone decides a prefix-cache hit.

The arrays are made read-only, so a frozen ``Trace`` really is immutable and can be shared freely.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "IntArray", "Trace"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _frozen(
    values: npt.ArrayLike, dtype: type[np.float64] | type[np.int64], what: str
) -> npt.NDArray[np.generic]:
    array = np.array(values, dtype=dtype, copy=True)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    array.setflags(write=False)
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class Trace:
    """Requests in arrival order. Takes any array-likes; fields are coerced to read-only numpy arrays."""

    name: str
    arrival_s: FloatArray
    prompt_tokens: IntArray
    output_tokens: IntArray
    block_offsets: IntArray | None = None
    block_hashes: IntArray | None = None
    block_tokens: int = 512

    def __post_init__(self) -> None:
        arrival = _frozen(self.arrival_s, np.float64, "arrival_s")
        prompt = _frozen(self.prompt_tokens, np.int64, "prompt_tokens")
        output = _frozen(self.output_tokens, np.int64, "output_tokens")
        n = arrival.size
        if prompt.size != n or output.size != n:
            raise ValueError(
                f"column lengths disagree: arrival_s {n}, prompt_tokens {prompt.size}, "
                f"output_tokens {output.size}"
            )
        if n and not np.all(np.isfinite(arrival)):
            raise ValueError("arrival_s holds a non-finite value")
        if n and arrival[0] < 0:
            raise ValueError(f"arrival_s must be non-negative, first is {arrival[0]}")
        if n > 1 and np.any(np.diff(arrival) < 0):
            raise ValueError("arrival_s must be sorted ascending")
        if n and (prompt.min() < 0 or output.min() < 0):
            raise ValueError("token counts must be non-negative")
        if self.block_tokens < 1:
            raise ValueError(f"block_tokens must be positive, got {self.block_tokens}")
        object.__setattr__(self, "arrival_s", arrival)
        object.__setattr__(self, "prompt_tokens", prompt)
        object.__setattr__(self, "output_tokens", output)
        self._set_hashes(n)

    def _set_hashes(self, n: int) -> None:
        if (self.block_offsets is None) != (self.block_hashes is None):
            raise ValueError("block_offsets and block_hashes come together or not at all")
        if self.block_offsets is None or self.block_hashes is None:
            return
        offsets = _frozen(self.block_offsets, np.int64, "block_offsets")
        hashes = _frozen(self.block_hashes, np.int64, "block_hashes")
        if offsets.size != n + 1:
            raise ValueError(f"block_offsets needs {n + 1} entries (requests + 1), got {offsets.size}")
        if offsets[0] != 0 or offsets[-1] != hashes.size or np.any(np.diff(offsets) < 0):
            raise ValueError("block_offsets must start at 0, be non-decreasing and end at len(block_hashes)")
        object.__setattr__(self, "block_offsets", offsets)
        object.__setattr__(self, "block_hashes", hashes)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def has_hashes(self) -> bool:
        return self.block_hashes is not None

    def hashes(self, i: int) -> IntArray:
        """Request ``i``'s chained prefix-block hashes (a read-only view)."""
        if self.block_offsets is None or self.block_hashes is None:
            raise ValueError(f"trace {self.name!r} carries no block hashes (see hashing.synthesize_hashes)")
        return self.block_hashes[self.block_offsets[i] : self.block_offsets[i + 1]]

    @property
    def duration_s(self) -> float:
        """Seconds from the trace start (t = 0) to the last arrival; 0 for an empty trace."""
        return float(self.arrival_s[-1]) if self.arrival_s.size else 0.0

    @property
    def mean_rate(self) -> float:
        """Requests per second over ``duration_s`` (0 when the trace spans no time)."""
        duration = self.duration_s
        return len(self) / duration if duration > 0 else 0.0
