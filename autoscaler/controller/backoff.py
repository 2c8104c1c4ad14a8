"""Retry delays for a dead API server: exponential, capped, with jitter.

A flat retry (every replica of every controller relisting every 5 s) is what an API server coming back up
meets all at once. Each failure in a row doubles the delay up to a cap, and half of each delay is random
("equal jitter"), so replicas that failed together spread out and none retries in a hot loop. The first
success resets the count.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    base_s: float = 1.0  # the delay after the first failure, before jitter
    cap_s: float = 60.0  # the most any delay grows to

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got {self.base_s} and {self.cap_s}")

    def delay(self, failures: int, *, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` (>= 1) failures in a row: in ``[d/2, d]``, ``d`` doubling."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(max(failures, 1) - 1, 60))
        return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)
