"""Pure Trace -> Trace transforms: scale, stack, reshape and window a recorded or synthetic trace.

- ``compress(trace, factor)``: divides every arrival time by ``factor``, so the rate is ``factor`` times
  higher and the duration ``factor`` times shorter, keeping the request mix and the burst pattern.
- ``superpose(trace, copies=k, rng=...)``: ``k`` copies, each circularly shifted by a seeded random offset
  within the trace's duration, merged. The rate is ``k`` times higher over the same duration, and bursts do
  not line up (unlike ``compress``). Copies stand for other users, so by default they share only the
  "system" hashes (those that at least 1 % of requests reference, i.e. system prompts), not conversations;
  ``share="none"`` separates even those, ``share="all"`` keeps every hash (copies replay the same sessions).
  The circular shift moves a copy's tail to its front, so a follow-up may precede its parent there: a few
  hits become misses at each copy's wrap point.
- ``modulate(trace, curve)``: reshapes the load by a rate curve R(t) by TIME-WARPING, not thinning: time is
  stretched where R is low and squeezed where it is high, so the instantaneous rate becomes
  ``base rate x R(t) / mean(R)``. R is normalised over the trace's duration, which therefore stays the same,
  as do the count and every request. Thinning was rejected because it only removes requests (it cannot raise
  the rate above the recording's), needs R <= 1, and breaks conversations by dropping their turns.
- ``truncate(trace, start_s=..., end_s=...)``: the requests in [start_s, end_s), shifted to start at 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from autoscaler.sim.workloads import curves
from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["ShareMode", "compress", "modulate", "superpose", "truncate"]

ShareMode = Literal["system", "none", "all"]

_SYSTEM_HASH_SHARE = 0.01
_WARP_GRID_POINTS = 8192


def _gather(
    offsets: trace_mod.IntArray, hashes: trace_mod.IntArray, rows: trace_mod.IntArray
) -> tuple[trace_mod.IntArray, trace_mod.IntArray]:
    """The ragged rows ``rows`` of (offsets, hashes), in that order."""
    counts = np.diff(offsets)[rows]
    new_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    shift = np.repeat(offsets[rows] - new_offsets[:-1], counts)
    return new_offsets, hashes[np.arange(int(new_offsets[-1])) + shift]


def _take(
    trace: trace_mod.Trace, rows: trace_mod.IntArray, *, arrival_s: trace_mod.FloatArray
) -> trace_mod.Trace:
    """The requests ``rows`` of ``trace`` with new (sorted) arrival times."""
    offsets = hashes = None
    if trace.block_offsets is not None and trace.block_hashes is not None:
        offsets, hashes = _gather(trace.block_offsets, trace.block_hashes, rows)
    return dataclasses.replace(
        trace,
        arrival_s=arrival_s,
        prompt_tokens=trace.prompt_tokens[rows],
        output_tokens=trace.output_tokens[rows],
        block_offsets=offsets,
        block_hashes=hashes,
    )


def compress(trace: trace_mod.Trace, factor: float) -> trace_mod.Trace:
    """Arrival times divided by ``factor`` (> 0): the rate times ``factor``."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"compression factor must be positive, got {factor}")
    return dataclasses.replace(trace, arrival_s=trace.arrival_s / factor)


def truncate(trace: trace_mod.Trace, *, start_s: float = 0.0, end_s: float = math.inf) -> trace_mod.Trace:
    """The requests arriving in [start_s, end_s), with time shifted so ``start_s`` becomes 0."""
    if not 0 <= start_s < end_s:
        raise ValueError(f"need 0 <= start_s < end_s, got [{start_s}, {end_s})")
    first, last = np.searchsorted(trace.arrival_s, [start_s, end_s], side="left")
    rows = np.arange(first, last, dtype=np.int64)
    return _take(trace, rows, arrival_s=trace.arrival_s[rows] - start_s)


def _relabel(
    hashes: trace_mod.IntArray, copy: trace_mod.IntArray, *, requests: int, share: ShareMode
) -> trace_mod.IntArray:
    """Gives each copy its own hash labels (``copy`` is each block's copy number), except those shared."""
    if share == "all":
        return hashes
    unique, dense = np.unique(hashes, return_inverse=True)
    if share == "none":
        kept = np.zeros(unique.size, dtype=bool)
    else:
        # Chained hashes appear at most once per request, so a hash's count is its requests' count.
        kept = np.bincount(dense, minlength=unique.size) >= max(2.0, _SYSTEM_HASH_SHARE * requests)
    return np.where(kept[dense], dense, dense + copy * unique.size).astype(np.int64)


def superpose(
    trace: trace_mod.Trace, *, copies: int, rng: np.random.Generator, share: ShareMode = "system"
) -> trace_mod.Trace:
    """``copies`` circularly shifted copies merged (the first unshifted): ``copies`` times the rate."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    period = trace.duration_s
    n = len(trace)
    shifts = rng.uniform(0.0, period, size=copies - 1)
    if period > 0:
        shifted = [np.mod(trace.arrival_s + shift, period) for shift in shifts]
    else:  # every request at t = 0: nothing to shift
        shifted = [trace.arrival_s] * (copies - 1)
    arrival = np.concatenate([trace.arrival_s, *shifted])
    order = np.argsort(arrival, kind="stable")
    stacked = _take(trace, np.tile(np.arange(n), copies)[order], arrival_s=arrival[order])
    if stacked.block_offsets is None or stacked.block_hashes is None:
        return stacked
    copy_of_request = np.repeat(np.arange(copies), n)[order]
    copy_of_block = np.repeat(copy_of_request, np.diff(stacked.block_offsets))
    hashes = _relabel(stacked.block_hashes, copy_of_block, requests=n, share=share)
    return dataclasses.replace(stacked, block_hashes=hashes)


def modulate(trace: trace_mod.Trace, curve: curves.RateCurve) -> trace_mod.Trace:
    """Time-warps ``trace`` so its rate follows ``curve``'s shape (see the module docstring)."""
    duration = trace.duration_s
    if duration <= 0:
        return trace
    grid = np.linspace(0.0, duration, _WARP_GRID_POINTS)
    rate = curve.rate(grid)
    if np.any(rate < 0) or not np.all(np.isfinite(rate)):
        raise ValueError("a modulating rate curve must be finite and non-negative")
    # Lambda(t) = integral of R, scaled so Lambda(duration) = duration; an old time s moves to Lambda^-1(s).
    steps = np.diff(grid) * (rate[1:] + rate[:-1]) / 2
    cumulative = np.concatenate(([0.0], np.cumsum(steps)))
    if cumulative[-1] <= 0:
        raise ValueError("a modulating rate curve must be positive somewhere within the trace")
    warped = np.interp(trace.arrival_s, cumulative * (duration / cumulative[-1]), grid)
    return dataclasses.replace(trace, arrival_s=warped)
