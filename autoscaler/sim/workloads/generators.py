"""Seeded synthetic arrival processes, and the trace built from them with lengths and prefix hashes.

- Renewal processes with a target mean rate and coefficient of variation (CV) of the inter-arrival gaps:
  exponential (Poisson, CV 1), Gamma (shape ``1 / CV**2``) and Weibull (shape solved from the CV). CV > 1
  gives bursty traffic: the measured CV is about 1.1 for the Azure conversation trace but about 13 for Azure
  code (reference/performance-and-models.md 4.2), so Poisson under-states queueing for bursty services.
- Non-homogeneous Poisson processes with a rate curve (diurnal, step, spike, piecewise linear), drawn by
  thinning (Lewis and Shedler): candidates at the curve's peak rate, each kept with probability R(t) / peak.

Everything draws from the ``numpy.random.Generator`` passed in, never a global RNG, so a seed fixes the trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import optimize

from autoscaler.sim.workloads import curves, hashing, lengths
from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["RenewalFamily", "curve_arrivals", "renewal_arrivals", "synthetic_trace", "weibull_shape"]

RenewalFamily = Literal["exponential", "gamma", "weibull"]


def weibull_shape(cv: float) -> float:
    """The Weibull shape k whose CV is ``cv``: CV**2 + 1 = Gamma(1 + 2/k) / Gamma(1 + 1/k)**2."""

    def excess(log_k: float) -> float:
        k = math.exp(log_k)
        return math.lgamma(1 + 2 / k) - 2 * math.lgamma(1 + 1 / k) - math.log1p(cv**2)

    return math.exp(float(optimize.brentq(excess, math.log(0.05), math.log(200.0))))


def _gap_sampler(
    family: RenewalFamily, *, mean_gap: float, cv: float, rng: np.random.Generator
) -> Callable[[int], trace_mod.FloatArray]:
    if family == "exponential":
        return lambda size: rng.exponential(mean_gap, size=size)
    if family == "gamma":
        shape = 1.0 / cv**2
        return lambda size: rng.gamma(shape, mean_gap / shape, size=size)
    k = weibull_shape(cv)
    scale = mean_gap / math.exp(math.lgamma(1 + 1 / k))
    return lambda size: scale * rng.weibull(k, size=size)


def _check(rate: float, duration_s: float) -> None:
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of requests per second, got {rate}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be positive, got {duration_s}")


def renewal_arrivals(
    *,
    rate: float,
    duration_s: float,
    rng: np.random.Generator,
    family: RenewalFamily = "exponential",
    cv: float = 1.0,
) -> trace_mod.FloatArray:
    """Arrival times in [0, duration_s) with i.i.d. gaps of mean ``1 / rate`` and CV ``cv``.

    ``exponential`` ignores ``cv`` (it is 1 by definition). The process starts with a full gap at t = 0.
    """
    _check(rate, duration_s)
    if family != "exponential" and not (math.isfinite(cv) and 0.05 <= cv <= 50):
        raise ValueError(f"cv must lie in [0.05, 50], got {cv}")
    draw = _gap_sampler(family, mean_gap=1.0 / rate, cv=cv, rng=rng)
    expected = rate * duration_s
    batch = int(expected + 6 * math.sqrt(expected) * max(cv, 1.0)) + 64
    parts: list[trace_mod.FloatArray] = []
    end = 0.0
    while end < duration_s:
        times = end + np.cumsum(draw(batch))
        parts.append(times)
        end = float(times[-1])
    arrivals = np.concatenate(parts)
    return arrivals[arrivals < duration_s]


def curve_arrivals(
    curve: curves.RateCurve, *, duration_s: float, rng: np.random.Generator
) -> trace_mod.FloatArray:
    """A non-homogeneous Poisson process with rate ``curve.rate(t)`` on [0, duration_s), by thinning."""
    peak = curve.peak(duration_s)
    if peak <= 0:
        return np.empty(0, dtype=np.float64)
    candidates = renewal_arrivals(rate=peak, duration_s=duration_s, rng=rng)
    keep = rng.random(candidates.size) * peak < curve.rate(candidates)
    return candidates[keep]


def synthetic_trace(
    *,
    name: str,
    arrival_s: trace_mod.FloatArray,
    preset: lengths.LengthPreset,
    rng: np.random.Generator,
    prefix: hashing.PrefixModel | None = None,
    block_tokens: int = 512,
) -> trace_mod.Trace:
    """Draws prompt and output lengths (correlated as ``preset`` says), then synthetic prefix hashes if
    ``prefix`` is set."""
    length_rng, hash_rng = rng.spawn(2)
    prompt, output = preset.sample(length_rng, arrival_s.size)
    trace = trace_mod.Trace(
        name=name, arrival_s=arrival_s, prompt_tokens=prompt, output_tokens=output, block_tokens=block_tokens
    )
    return trace if prefix is None else hashing.synthesize_hashes(trace, rng=hash_rng, model=prefix)
