"""Chained prefix-block hashes: a synthetic prefix model for traces without them, and the ideal hit rate.

Only the Mooncake trace publishes block hashes. The Azure trace and the synthetic generators carry lengths
alone, yet a cache-affinity router needs prefix structure to route on. ``synthesize_hashes`` invents one. It
is an ASSUMPTION, not data, calibrated on the Mooncake conversation trace (the one public trace with hashes):
- every request starts with a system prompt drawn from a small set (Mooncake: one, one block long);
- with probability ``followup_probability`` (Mooncake: 39 % of requests reuse more than the system prompt)
  a request is the next turn of an earlier conversation. Its parent is the latest request that arrived at
  least a log-normal lag earlier (Mooncake: median 123 s, p90 483 s between a request and the one it
  extends), and it reuses the parent's full blocks (as 82 % of Mooncake's follow-ups do);
- every request's last block is its own (its new user turn), and all other blocks are fresh.
Lengths are kept as given, so a follow-up shorter than its parent reuses only its own length's worth. In the
real trace follow-ups are longer than their parents (28 blocks against 21), so on the same lengths drawn
independently this model reuses about half as much as the real trace does (its ideal hit rate on
Mooncake's own arrivals and lengths). Raise ``followup_probability`` for a cache-friendlier workload.

Hashes are chained (block ``j``'s hash names the whole prefix up to ``j``), so equal hashes mean a reusable
KV block, as in Mooncake's ``hash_ids``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["PrefixModel", "prefix_hit_rate_unbounded", "synthesize_hashes"]


@dataclasses.dataclass(frozen=True, slots=True)
class PrefixModel:
    """The synthetic prefix structure; defaults are calibrated on the Mooncake conversation trace."""

    system_prompts: int = 1
    system_prompt_blocks: int = 1
    followup_probability: float = 0.39
    lag_median_s: float = 123.0
    lag_p90_s: float = 483.0

    def __post_init__(self) -> None:
        if self.system_prompts < 1 or self.system_prompt_blocks < 0:
            raise ValueError("need at least one system prompt and a non-negative block count")
        if not 0.0 <= self.followup_probability <= 1.0:
            raise ValueError(f"followup_probability must lie in [0, 1], got {self.followup_probability}")
        if not 0.0 < self.lag_median_s <= self.lag_p90_s:
            raise ValueError("need 0 < lag_median_s <= lag_p90_s")


_Z90 = 1.2815515655446004  # standard normal 90th percentile


def synthesize_hashes(
    trace: trace_mod.Trace, *, rng: np.random.Generator, model: PrefixModel | None = None
) -> trace_mod.Trace:
    """Returns ``trace`` with chained block hashes drawn from ``model`` (replacing any it had)."""
    model = model or PrefixModel()
    n = len(trace)
    block_tokens = trace.block_tokens
    counts = -(-trace.prompt_tokens // block_tokens)
    full_blocks = trace.prompt_tokens // block_tokens
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    hashes = np.empty(int(offsets[-1]), dtype=np.int64)

    sigma = np.log(model.lag_p90_s / model.lag_median_s) / _Z90
    lags = rng.lognormal(np.log(model.lag_median_s), sigma, size=n)
    followup = rng.random(n) < model.followup_probability
    # The parent is the latest request that arrived at or before ``arrival - lag`` (strictly earlier than i).
    parents = np.minimum(
        np.searchsorted(trace.arrival_s, trace.arrival_s - lags, side="right") - 1, np.arange(n) - 1
    )
    system = rng.integers(0, model.system_prompts, size=n)
    system_chains = np.arange(model.system_prompts * model.system_prompt_blocks, dtype=np.int64).reshape(
        model.system_prompts, model.system_prompt_blocks
    )
    next_hash = system_chains.size
    for i in range(n):
        start, count = int(offsets[i]), int(counts[i])
        parent = int(parents[i]) if followup[i] else -1
        if parent >= 0:
            system[i] = system[parent]  # a conversation keeps its system prompt
        shared = min(model.system_prompt_blocks, max(count - 1, 0))
        hashes[start : start + shared] = system_chains[system[i], :shared]
        if parent >= 0 and min(int(full_blocks[parent]), count - 1) > shared:
            shared = min(int(full_blocks[parent]), count - 1)
            hashes[start : start + shared] = hashes[offsets[parent] : offsets[parent] + shared]
        fresh = count - shared
        hashes[start + shared : start + count] = np.arange(next_hash, next_hash + fresh)
        next_hash += fresh
    return dataclasses.replace(trace, block_offsets=offsets, block_hashes=hashes)


def prefix_hit_rate_unbounded(trace: trace_mod.Trace) -> float:
    """Fraction of block references that hit an infinite prefix cache.

    Request ``i``'s block ``j`` hits when its hash appeared in an earlier request and all of ``i``'s earlier
    blocks hit too (a prefix cache reuses only a leading run). With chained hashes the second condition
    follows from the first; it is enforced anyway so unchained hashes are not over-counted. 0 for a trace
    without blocks.
    """
    if trace.block_offsets is None or trace.block_hashes is None or trace.block_hashes.size == 0:
        return 0.0
    counts = np.diff(trace.block_offsets)
    owner = np.repeat(np.arange(len(trace)), counts)
    _, first_index, inverse = np.unique(trace.block_hashes, return_index=True, return_inverse=True)
    seen_before = owner[first_index][inverse] < owner
    misses = np.cumsum(~seen_before)
    starts = trace.block_offsets[:-1][counts > 0]
    misses_before_request = np.where(starts > 0, misses[np.maximum(starts - 1, 0)], 0)
    leading_hit = misses - np.repeat(misses_before_request, counts[counts > 0]) == 0
    return float(np.count_nonzero(leading_hit)) / float(trace.block_hashes.size)
