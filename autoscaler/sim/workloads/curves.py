"""Rate curves R(t) in requests per second: the shapes of non-stationary load.

One vocabulary serves two uses: a synthetic generator draws a non-homogeneous Poisson process with rate R(t),
and the ``modulate`` transform reshapes a recorded trace by R(t) (where only R's shape matters). Each curve is
a frozen value with a vectorised ``rate(t)`` and a ``peak(duration_s)`` upper bound, which thinning needs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["Diurnal", "PiecewiseLinear", "RateCurve", "Spike", "Steps"]


class RateCurve(Protocol):
    def rate(self, t: trace_mod.FloatArray) -> trace_mod.FloatArray:
        """R(t) >= 0 at each time in ``t`` (seconds)."""
        ...

    def peak(self, duration_s: float) -> float:
        """An upper bound of R over [0, duration_s)."""
        ...


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value}")


def _non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative number, got {value}")


@dataclasses.dataclass(frozen=True, slots=True)
class Diurnal:
    """A sinusoid around ``mean_rate``, peaking at ``peak_s`` at ``peak_to_trough`` times its trough.

    The amplitude is ``(ratio - 1) / (ratio + 1)`` of the mean, so whole periods average ``mean_rate``.
    """

    mean_rate: float
    peak_to_trough: float = 3.0
    period_s: float = 86_400.0
    peak_s: float = 0.0

    def __post_init__(self) -> None:
        _positive("mean_rate", self.mean_rate)
        _positive("period_s", self.period_s)
        if not (math.isfinite(self.peak_to_trough) and self.peak_to_trough >= 1):
            raise ValueError(f"peak_to_trough must be at least 1, got {self.peak_to_trough}")

    @property
    def amplitude(self) -> float:
        return (self.peak_to_trough - 1) / (self.peak_to_trough + 1)

    def rate(self, t: trace_mod.FloatArray) -> trace_mod.FloatArray:
        phase = 2 * np.pi * (np.asarray(t, dtype=np.float64) - self.peak_s) / self.period_s
        return self.mean_rate * (1 + self.amplitude * np.cos(phase))

    def peak(self, duration_s: float) -> float:
        return self.mean_rate * (1 + self.amplitude)


@dataclasses.dataclass(frozen=True, slots=True)
class Steps:
    """``base_rate`` until the first change, then each ``(at_s, rate)`` change holds until the next one."""

    base_rate: float
    changes: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        _non_negative("base_rate", self.base_rate)
        for at_s, rate in self.changes:
            _non_negative("a step's at_s", at_s)
            _non_negative("a step's rate", rate)
        times = [at_s for at_s, _ in self.changes]
        if times != sorted(times):
            raise ValueError("step changes must be in time order")

    def rate(self, t: trace_mod.FloatArray) -> trace_mod.FloatArray:
        levels = np.array([self.base_rate, *(rate for _, rate in self.changes)], dtype=np.float64)
        times = np.array([at_s for at_s, _ in self.changes], dtype=np.float64)
        return levels[np.searchsorted(times, np.asarray(t, dtype=np.float64), side="right")]

    def peak(self, duration_s: float) -> float:
        return max([self.base_rate, *(rate for at_s, rate in self.changes if at_s < duration_s)])


@dataclasses.dataclass(frozen=True, slots=True)
class Spike:
    """``base_rate``, except ``peak_rate`` during ``[start_s, start_s + duration_s)`` (a flash crowd)."""

    base_rate: float
    peak_rate: float
    start_s: float
    duration_s: float

    def __post_init__(self) -> None:
        _non_negative("base_rate", self.base_rate)
        _non_negative("peak_rate", self.peak_rate)
        _non_negative("start_s", self.start_s)
        _positive("duration_s", self.duration_s)

    def rate(self, t: trace_mod.FloatArray) -> trace_mod.FloatArray:
        t = np.asarray(t, dtype=np.float64)
        inside = (t >= self.start_s) & (t < self.start_s + self.duration_s)
        return np.where(inside, self.peak_rate, self.base_rate)

    def peak(self, duration_s: float) -> float:
        return max(self.base_rate, self.peak_rate) if self.start_s < duration_s else self.base_rate


@dataclasses.dataclass(frozen=True, slots=True)
class PiecewiseLinear:
    """Linear between ``(t_s, rate)`` points, flat beyond the ends: any measured rate curve."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a piecewise-linear curve needs at least one point")
        for t_s, rate in self.points:
            _non_negative("a point's t_s", t_s)
            _non_negative("a point's rate", rate)
        times = [t_s for t_s, _ in self.points]
        if times != sorted(times):
            raise ValueError("points must be in time order")

    def rate(self, t: trace_mod.FloatArray) -> trace_mod.FloatArray:
        times, rates = zip(*self.points, strict=True)
        rate: trace_mod.FloatArray = np.interp(np.asarray(t, dtype=np.float64), times, rates)
        return rate

    def peak(self, duration_s: float) -> float:
        return max(rate for _, rate in self.points)
