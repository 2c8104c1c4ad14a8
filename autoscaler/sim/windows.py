"""Fixed windows over a trace's span, the unit in which the references (clairvoyant, lower bound, model
oracle) hold a replica count.

Window ``k`` covers ``[k * window_s, (k + 1) * window_s)``; the last one ends at the trace's duration, so it
may be shorter, and a reference pays for exactly the span of the trace.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

from autoscaler.sim.workloads.trace import Trace

__all__ = ["Windows"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class Windows:
    window_s: float
    start_s: FloatArray  # each window's start
    length_s: FloatArray  # each window's length (the last may be partial)
    index: IntArray  # per request in trace order, the window it arrives in

    @classmethod
    def of(cls, trace: Trace, window_s: float) -> Windows:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be positive, got {window_s}")
        # A trace whose requests all arrive at once still occupies one whole window.
        span = trace.duration_s if trace.duration_s > 0 else window_s
        count = max(1, math.ceil(span / window_s))
        start = np.arange(count, dtype=np.float64) * window_s
        end = np.minimum(start + window_s, span)
        index = np.minimum((np.asarray(trace.arrival_s) // window_s).astype(np.int64), count - 1)
        return cls(window_s=window_s, start_s=start, length_s=end - start, index=index)

    def __len__(self) -> int:
        return int(self.start_s.size)

    def sums(self, values: npt.ArrayLike) -> FloatArray:
        """Per window, the sum of a per-request quantity over the requests arriving in it."""
        weights = np.asarray(values, dtype=np.float64)
        return np.asarray(np.bincount(self.index, weights, minlength=len(self)), dtype=np.float64)
