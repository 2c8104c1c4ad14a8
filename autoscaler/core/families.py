"""Raw metric families of one pool and phase over one rate window: what both drivers measure.

The policy's signals are derived from these by one pure function (``autoscaler.core.signal_derivation``),
so the live controller and the simulator cannot disagree on what a field means: the live reader fills a
``PhaseFamilies`` from Prometheus (``increase(...[window])`` per counter and per histogram bucket, gauges at
the evaluation time, each ``sum by`` pool and phase), and the simulator fills one from the counters and
gauges its engines expose at its scrapes, bucketed at vLLM's own boundaries.

Counters are increases over the window, summed over the phase's replicas; gauges are sums over the replicas
that reported one (``replicas`` says how many). A family the source does not expose is None: the fields
derived from it are then unset, in both drivers alike.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Histogram", "PhaseFamilies"]


@dataclasses.dataclass(frozen=True, slots=True)
class Histogram:
    """The increase of one histogram family over a window, as Prometheus' cumulative ``le`` buckets.

    ``cumulative[i]`` counts the observations at or below ``bounds[i]``; the last entry is the ``+Inf``
    bucket (every observation), so ``len(cumulative) == len(bounds) + 1``. ``total`` is the ``_sum``.
    """

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    total: float

    def __post_init__(self) -> None:
        if len(self.cumulative) != len(self.bounds) + 1:
            raise ValueError(
                f"a histogram needs one count per bound plus +Inf: {len(self.bounds)} bounds, "
                f"{len(self.cumulative)} counts"
            )
        if any(not b < c for b, c in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError(f"histogram bounds must ascend: {self.bounds}")
        if not all(math.isfinite(b) for b in self.bounds):
            raise ValueError("histogram bounds must be finite (+Inf is implied)")

    @property
    def count(self) -> float:
        return self.cumulative[-1]


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseFamilies:
    """One pool and phase: counters' increases over ``window_s``, gauges as of ``age_s`` seconds ago.

    vLLM's names (the live reader's defaults; ``ROUTER_QUERIES`` takes ``requests`` and the prefix counters
    from the router instead) are given per field.
    """

    window_s: float
    age_s: float = math.inf  # the newest sample behind the gauges; inf when none was seen
    requests: float | None = None  # vllm:request_success_total (every finished_reason)
    prompt_tokens: Histogram | None = None  # vllm:request_prompt_tokens
    output_tokens: Histogram | None = None  # vllm:request_generation_tokens
    prefix_queried: float | None = None  # vllm:prefix_cache_queries_total (tokens)
    prefix_hit: float | None = None  # vllm:prefix_cache_hits_total (tokens)
    ttft: Histogram | None = None  # vllm:time_to_first_token_seconds
    itl: Histogram | None = None  # vllm:inter_token_latency_seconds (one observation per token gap)
    replicas: float | None = None  # replicas reporting gauges: count of vllm:num_requests_waiting
    waiting: float | None = None  # vllm:num_requests_waiting, summed
    running: float | None = None  # vllm:num_requests_running, summed
    kv_usage: float | None = None  # vllm:kv_cache_usage_perc, summed (0..1 each)
    kv_capacity_tokens: float | None = None  # per replica: num_gpu_blocks x block_size (cache_config_info)

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"the rate window must be positive, got {self.window_s}")
