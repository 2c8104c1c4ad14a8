"""The physical floor: the fewest replicas per window that the profile's work alone demands.

No queueing model, no percentile, no start-up delay: every replica of a phase is busy all the time, in the
cheapest batches the engine allows, on a perfect shared prefix cache. Per window of the trace and phase:

- prefill work of a request is its linear and attention cost on the uncached tokens (``perfect_cache_tokens``)
  plus the per-step overhead amortised over full steps of ``max_num_batched_tokens``; in an aggregated pool
  the step's base cost is left out (the decode steps it rides on pay it);
- decode work of a request is ``output - 1`` steps (the first token comes with the prefill) at the largest
  batch ``B`` the replica allows: ``max_num_seqs``, the KV cache at the window's mean context, and the ITL
  target (``step(B) <= ITL``, a property of one step, not of a queue); each step's base and per-sequence cost
  is shared by the ``B`` sequences, the per-context cost is the request's own;
- replicas = ``ceil(work / window length)``, at least the minimum and at most the maximum of the phase.

GPU-hours are those replicas over the trace's span. Nothing a policy does can beat it, which is what it is
for; a policy's ratio to it says how far from physics it is, the clairvoyant's ratio how much of that gap
any autoscaler has to pay for queueing and the SLO.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.windows import Windows
from autoscaler.sim.workloads.trace import Trace

__all__ = ["LowerBound", "decode_batch", "lower_bound"]

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class LowerBound:
    windows: Windows
    replicas: dict[Phase, FloatArray]  # per window
    gpu_hours: float


def decode_batch(profile: Profile, *, context: float, itl_s: float) -> int:
    """The largest decode batch one replica can run at ``context`` tokens per sequence: at least one."""
    per_sequence = profile.decode.per_sequence_s.value + profile.decode.per_context_token_s.value * context
    by_itl = (itl_s - profile.step.base_s.value) / per_sequence
    by_kv = profile.kv_capacity_tokens / max(context, 1.0)
    return max(1, math.floor(min(float(profile.max_num_seqs), by_itl, by_kv)))


def _prefill_work(profile: Profile, prompt: FloatArray, cached: FloatArray, *, with_base: bool) -> FloatArray:
    new = prompt - cached
    overhead = profile.prefill.per_step_s.value + (profile.step.base_s.value if with_base else 0.0)
    return np.asarray(
        profile.prefill.per_token_s.value * new
        + profile.prefill.per_attention_pair_s.value * (prompt**2 - cached**2)
        + overhead * new / profile.max_num_batched_tokens,
        dtype=np.float64,
    )


def _decode_work(
    profile: Profile, prompt: FloatArray, output: FloatArray, windows: Windows, itl_s: float
) -> FloatArray:
    steps = np.maximum(output - 1.0, 0.0)
    context = prompt + output / 2
    counts = windows.sums(np.ones_like(prompt))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_context = np.where(counts > 0, windows.sums(context) / counts, 1.0)
    batch = np.array([decode_batch(profile, context=c, itl_s=itl_s) for c in mean_context.tolist()])
    shared = (profile.step.base_s.value / batch + profile.decode.per_sequence_s.value)[windows.index]
    return np.asarray(steps * (shared + profile.decode.per_context_token_s.value * context), dtype=np.float64)


def lower_bound(
    trace: Trace,
    *,
    profile: Profile,
    slo: Slo,
    mode: ServingMode,
    cached_tokens: npt.NDArray[np.int64],
    min_replicas: Mapping[Phase, int],
    max_replicas: Mapping[Phase, int],
    window_s: float = 60.0,
) -> LowerBound:
    """Replicas per window and phase at full utilisation, and their GPU-hours (see the module docstring)."""
    windows = Windows.of(trace, window_s)
    prompt = trace.prompt_tokens.astype(np.float64)
    output = trace.output_tokens.astype(np.float64)
    cached = np.asarray(cached_tokens, dtype=np.float64)
    decode = _decode_work(profile, prompt, output, windows, slo.itl.seconds)
    if mode is ServingMode.DISAGGREGATED:
        work = {
            Phase.PREFILL: _prefill_work(profile, prompt, cached, with_base=True),
            Phase.DECODE: decode,
        }
    else:
        work = {Phase.AGGREGATED: _prefill_work(profile, prompt, cached, with_base=False) + decode}
    replicas = {
        # A bound never lets a float's last bit round up into one more replica.
        phase: np.clip(
            np.ceil(windows.sums(w) / windows.length_s - 1e-9), min_replicas[phase], max_replicas[phase]
        )
        for phase, w in work.items()
    }
    seconds = sum(float((r * windows.length_s).sum()) for r in replicas.values())
    return LowerBound(
        windows=windows, replicas=replicas, gpu_hours=seconds * profile.gpus_per_replica / 3600.0
    )
