"""Which requests no autoscaler can bring within the SLO, and why: the part of a miss that is not a policy's.

A request is infeasible when it misses the SLO even alone on an idle replica with the best cache it could
have. Reasons, checked in this order (a request counts once, under the first that applies):

- ``exceeds_kv_cache``: its prompt and output do not fit one replica's KV cache (or exceed the deployment's
  max model length), so the engine refuses it;
- ``prefill_exceeds_ttft``: its prefill alone (uncached tokens after a perfect prefix cache, plus the KV
  transfer in P/D) takes longer than the TTFT target;
- ``decode_exceeds_itl``: its decode steps alone (a batch of one at its mean context) take longer than
  the ITL target.

"Best cache" is the perfect shared cache of ``perfect_cache_tokens``: a prompt block counts as cached when
any earlier request carried the same chained hash, as if every replica held every block ever computed. That
makes the count a lower bound on what is infeasible, so reporting attainment over the feasible requests never
excuses a miss that a policy could have avoided.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.workloads.trace import Trace

__all__ = ["REASONS", "Feasibility", "feasibility", "perfect_cache_tokens"]

REASONS = ("exceeds_kv_cache", "prefill_exceeds_ttft", "decode_exceeds_itl")

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def perfect_cache_tokens(trace: Trace) -> IntArray:
    """Per request, the leading prompt tokens a perfect shared prefix cache would hold (0 without hashes).

    Chained hashes make a hit a prefix: the request's leading blocks seen before, times the block size,
    capped one token short of the prompt (an engine always computes the last token, as vLLM does).
    """
    n = len(trace)
    cached = np.zeros(n, dtype=np.int64)
    if trace.block_offsets is None or trace.block_hashes is None:
        return cached
    offsets = trace.block_offsets.tolist()
    hashes = trace.block_hashes.tolist()
    prompts = trace.prompt_tokens.tolist()
    block = trace.block_tokens
    seen: set[int] = set()
    for i in range(n):
        blocks = hashes[offsets[i] : offsets[i + 1]]
        hits = 0
        for h in blocks:
            if h not in seen:
                break
            hits += 1
        seen.update(blocks)
        cached[i] = max(0, min(hits * block, prompts[i] - 1))
    return cached


@dataclasses.dataclass(frozen=True)
class Feasibility:
    feasible: BoolArray  # per request in trace order
    reason: npt.NDArray[np.int8]  # index into REASONS, -1 where feasible

    @property
    def counts(self) -> dict[str, int]:
        return {name: int((self.reason == i).sum()) for i, name in enumerate(REASONS)}

    @property
    def fraction(self) -> float:
        return float(self.feasible.mean()) if self.feasible.size else 1.0


def feasibility(
    trace: Trace,
    *,
    profile: Profile,
    slo: Slo,
    mode: ServingMode,
    cached_tokens: IntArray | None = None,
    max_model_len: int | None = None,
) -> Feasibility:
    """Classifies every request of ``trace`` (see the module docstring); ``cached_tokens`` defaults to the
    perfect shared cache; a context beyond ``max_model_len`` (or the KV capacity) is refused."""
    prompt = trace.prompt_tokens.astype(np.float64)
    output = trace.output_tokens.astype(np.float64)
    cached = (perfect_cache_tokens(trace) if cached_tokens is None else cached_tokens).astype(np.float64)
    prefill = profile.prefill_times(prompt - cached, cached)
    if mode is ServingMode.DISAGGREGATED:
        # The transfer time is affine in the tokens: its two coefficients, applied to the whole column.
        latency = profile.kv_transfer_time(0.0)
        prefill = prefill + latency + (profile.kv_transfer_time(1.0) - latency) * prompt
    # Alone, a request's mean step is the step of a batch of one at its mean context over its decode.
    decode_step = (
        profile.step.base_s.value
        + profile.decode.per_sequence_s.value
        + profile.decode.per_context_token_s.value * (prompt + output / 2)
    )
    checks = (
        prompt + output > min(profile.kv_capacity_tokens, max_model_len or math.inf),
        prefill > slo.ttft.seconds,
        (output > 1) & (decode_step > slo.itl.seconds),
    )
    reason = np.full(len(trace), -1, dtype=np.int8)
    for i, failed in enumerate(checks):
        reason[(reason < 0) & failed] = i
    return Feasibility(feasible=reason < 0, reason=reason)
