"""Latency service-level objectives: a percentile and a bound in seconds, for TTFT and ITL."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True, slots=True)
class LatencyTarget:
    """``percentile`` (0-100, exclusive) of the latency must stay at or below ``seconds``."""

    seconds: float
    percentile: float = 90.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"latency target must be a positive number of seconds, got {self.seconds}")
        if not 0 < self.percentile < 100:
            raise ValueError(f"percentile must lie strictly between 0 and 100, got {self.percentile}")

    @property
    def quantile(self) -> float:
        return self.percentile / 100.0


@dataclasses.dataclass(frozen=True, slots=True)
class Slo:
    ttft: LatencyTarget
    itl: LatencyTarget
