"""Every policy signal, defined once: raw metric families over a window -> ``PhaseSignals`` fields.

Both drivers call ``derive``: the live reader on what Prometheus answered, the simulator on what its
engines exposed at its scrapes. What a field means is therefore written here and nowhere else:

- ``arrival_rate``: the request counter's increase over the window, per second. With vLLM's counter that is
  *finished* requests (the rate lags arrivals and saturates with the pool), with the router's it is
  requests entering the phase.
- ``prompt_tokens_mean`` / ``output_tokens_mean``: ``_sum`` over count of the token histograms (exact);
  their CVs from the buckets (each bucket taken as uniform over its range, the ``+Inf`` one as its lower
  bound), so they are as coarse as vLLM's 1-2-5 buckets. ``arrival_cv`` has no source in vLLM or our
  router: it stays unset (the policy assumes Poisson).
- ``ttft_observed_s`` / ``itl_observed_s``: ``histogram_quantile`` over the bucket increases, with
  Prometheus' interpolation, so a percentile is only as fine as the bucket it falls in.
- ``prefix_hit_rate`` and ``kv_usage``: ratios, clamped into [0, 1] when rounding (an extrapolated
  ``increase``) pushes them out by at most ``RATIO_TOLERANCE``; a value further out is passed on as it is,
  and the policy holds on it as contradictory.
- what the engines report of themselves: the KV capacity per replica, the KV in use per running sequence
  (summed usage x capacity over summed running), running and waiting per reporting replica.

A family that is absent, or a ratio over an empty window (0/0), leaves its field unset: zero traffic is a
rate of 0 with undefined token means, which the policy reads as complete (``PhaseSignals.missing``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from autoscaler.core.families import Histogram, PhaseFamilies
from autoscaler.core.observation import PhaseSignals, ReplicaCounts

__all__ = ["RATIO_TOLERANCE", "derive", "histogram_quantile", "phase_signals"]

RATIO_TOLERANCE = 1e-3  # how far out of [0, 1] rounding can push a ratio of two counters

_FIELDS = frozenset(f.name for f in dataclasses.fields(PhaseSignals)) - {"replicas"}


def histogram_quantile(quantile: float, histogram: Histogram) -> float | None:
    """Prometheus' ``histogram_quantile`` (linear within the bucket; the largest finite bound past it).

    None when the histogram saw no observation (Prometheus answers NaN).
    """
    counts = histogram.cumulative
    observations = counts[-1]
    if not observations > 0:
        return None
    if quantile < 0:
        return -math.inf
    if quantile > 1:
        return math.inf
    bounds = histogram.bounds
    rank = quantile * observations
    b = next((i for i in range(len(bounds)) if counts[i] >= rank), len(bounds))
    if b == len(bounds):
        return bounds[-1] if bounds else None
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[b - 1] if b > 0 else 0.0
    below = counts[b - 1] if b > 0 else 0.0
    count = counts[b] - below
    return start + (bounds[b] - start) * ((rank - below) / count)


def _cv(histogram: Histogram) -> float | None:
    """Coefficient of variation from the buckets: uniform within each, the ``+Inf`` one at its lower bound."""
    first = second = 0.0
    below = lower = 0.0
    for upper, cumulative in zip((*histogram.bounds, math.inf), histogram.cumulative, strict=True):
        n = cumulative - below
        below = cumulative
        if n > 0:
            if math.isinf(upper):
                first += n * lower
                second += n * lower * lower
            else:
                first += n * (lower + upper) / 2
                second += n * (lower * lower + lower * upper + upper * upper) / 3
        lower = upper
    if not below > 0 or not first > 0:
        return None
    mean = first / below
    return math.sqrt(max(0.0, second / below - mean * mean)) / mean


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or not denominator > 0:
        return None
    value = numerator / denominator
    if -RATIO_TOLERANCE <= value < 0.0:
        return 0.0
    if 1.0 < value <= 1.0 + RATIO_TOLERANCE:
        return 1.0
    return value


def _per(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or not denominator > 0:
        return None
    return numerator / denominator


def derive(families: PhaseFamilies, *, ttft_quantile: float, itl_quantile: float) -> dict[str, float]:
    """The ``PhaseSignals`` fields (but ``replicas``) that ``families`` define; unset ones are left out."""
    f = families
    prompt, output = f.prompt_tokens, f.output_tokens
    kv_in_use = (
        f.kv_usage * f.kv_capacity_tokens
        if f.kv_usage is not None and f.kv_capacity_tokens is not None
        else None
    )
    values: dict[str, float | None] = {
        "arrival_rate": f.requests / f.window_s if f.requests is not None else None,
        "prompt_tokens_mean": _per(prompt.total, prompt.count) if prompt is not None else None,
        "output_tokens_mean": _per(output.total, output.count) if output is not None else None,
        "prompt_tokens_cv": _cv(prompt) if prompt is not None else None,
        "output_tokens_cv": _cv(output) if output is not None else None,
        "prefix_hit_rate": _ratio(f.prefix_hit, f.prefix_queried),
        "queue_length": f.waiting,
        "kv_usage": _ratio(f.kv_usage, f.replicas),
        "ttft_observed_s": histogram_quantile(ttft_quantile, f.ttft) if f.ttft is not None else None,
        "itl_observed_s": histogram_quantile(itl_quantile, f.itl) if f.itl is not None else None,
        "kv_capacity_tokens": f.kv_capacity_tokens,
        "kv_tokens_per_running": _per(kv_in_use, f.running),
        "running_per_replica": _per(f.running, f.replicas),
        "waiting_per_replica": _per(f.waiting, f.replicas),
        "age_s": f.age_s,
    }
    return {name: value for name, value in values.items() if value is not None}


def phase_signals(*, replicas: ReplicaCounts, values: Mapping[str, float]) -> PhaseSignals:
    """``PhaseSignals`` from derived ``values`` (unknown names are a bug, not data: they raise)."""
    unknown = set(values) - _FIELDS
    if unknown:
        raise ValueError(f"not PhaseSignals fields: {sorted(unknown)}")
    base = PhaseSignals(
        replicas=replicas,
        arrival_rate=None,
        prompt_tokens_mean=None,
        output_tokens_mean=None,
        age_s=math.inf,
    )
    changes: dict[str, Any] = dict(values)
    return dataclasses.replace(base, **changes)
