"""Decode sizing: the largest batch that meets the ITL target, capped by KV capacity, then Little's law.

A decode step for ``B`` sequences of mean context ``x`` (time-averaged, see ``context_per_sequence``)
takes ``T(B) = a + (b + c·x)·B`` (the profile's
step model). Sequences in flight per replica follow Little's law, ``n = (λ·O / R)·T(n)``, whose fixed point
is closed-form: ``n = (λO/R)·a / (1 - (λO/R)·(b + c·x))``. The batch fluctuates around ``n`` (over-dispersed
Poisson, so its q-quantile is ``n + z_q·√(3n)``, see ``BATCH_DISPERSION``) and the ITL percentile is the
step time of that batch.
The largest mean batch a replica may carry is the one whose q-quantile still meets the ITL target, fits in
the KV cache (at the profile's admission headroom) and under ``max_num_seqs``; replicas follow.

The context ``x`` is modelled from the load (``context_per_sequence``) unless the caller passes the one the
engines report (KV in use per running sequence): with prompt and output lengths correlated, as production
client mixes are, the model's figure (which assumes them independent) can be far short of it.
"""

from __future__ import annotations

import numpy as np

from autoscaler.capacity.load import FloatArray, Load, normal_quantile
from autoscaler.capacity.result import PhaseSizing
from autoscaler.core.slo import LatencyTarget
from autoscaler.profiles.schema import Profile


def context_per_sequence(load: Load) -> FloatArray:
    """Mean KV tokens of a sequence in the batch, averaged over time.

    A sequence holds its prompt plus what it has generated so far. Long outputs stay in the batch longer
    and grow larger while there, so the time average is size-biased: ``P + E[O²] / (2·E[O])``, i.e.
    ``P + (O/2)·(1 + cv_O²)``, not ``P + O/2`` (with the public traces' output CV near 1, about 10 % more).
    """
    return np.asarray(
        load.prompt_tokens + load.output_tokens / 2.0 * (1.0 + load.output_cv**2), dtype=np.float64
    )


def _context(load: Load, context: FloatArray | None) -> FloatArray:
    return context_per_sequence(load) if context is None else np.asarray(context, dtype=np.float64)


def _per_sequence_cost(profile: Profile, load: Load, context: FloatArray | None = None) -> FloatArray:
    return profile.decode.per_sequence_s.value + profile.decode.per_context_token_s.value * _context(
        load, context
    )


BATCH_DISPERSION = 3.0
"""Variance of a replica's batch over its mean. Poisson arrivals alone would give 1; sequences reach decode in
bursts (a packed prefill step finishes several prompts at once) and leave at heavy-tailed output lengths.
Fitted against the simulator (benchmarks/model_vs_sim.py and the ITL checks behind it; its figures are in
benchmarks/results/model_vs_sim.json): with 3, ITL p90 near saturation matches the simulated one, and is
slightly conservative at moderate load."""


def batch_quantile(mean_batch: FloatArray, quantile: float) -> FloatArray:
    spread = np.sqrt(BATCH_DISPERSION * np.maximum(mean_batch, 0.0))
    return np.asarray(mean_batch + normal_quantile(quantile) * spread)


def largest_mean_batch(cap: FloatArray, quantile: float) -> FloatArray:
    """The inverse of ``batch_quantile``: the largest mean batch whose ``quantile`` is at most ``cap``.

    With ``s = sqrt(n)``: ``s^2 + z*sqrt(D)*s - cap = 0``, whose positive root is ``s``.
    """
    zd = normal_quantile(quantile) * np.sqrt(BATCH_DISPERSION)
    root = (-zd + np.sqrt(zd * zd + 4.0 * np.maximum(cap, 0.0))) / 2.0
    return np.asarray(np.maximum(root, 0.0) ** 2)


def max_batches(
    profile: Profile, load: Load, target: LatencyTarget, *, context: FloatArray | None = None
) -> dict[str, FloatArray]:
    """The batch (at the percentile) each constraint allows, per point."""
    per_seq = _per_sequence_cost(profile, load, context)
    return {
        "itl": (target.seconds - profile.step.base_s.value) / per_seq,
        "kv-capacity": profile.kv_capacity_tokens * profile.limits.max_kv_usage / _context(load, context),
        "max-num-seqs": np.full_like(per_seq, float(profile.max_num_seqs)),
    }


def mean_batch(
    profile: Profile, load: Load, replicas: FloatArray, *, context: FloatArray | None = None
) -> FloatArray:
    """Little's-law fixed point of sequences in flight per replica; inf when decode cannot keep up."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_replica_tokens = load.rate * load.output_tokens / replicas  # output tokens/s per replica
        pressure = per_replica_tokens * _per_sequence_cost(profile, load, context)
        n = per_replica_tokens * profile.step.base_s.value / (1.0 - pressure)
    return np.where((pressure < 1.0) & (replicas > 0), n, np.where(load.rate > 0, np.inf, 0.0))


def itl(
    profile: Profile,
    load: Load,
    replicas: FloatArray,
    target: LatencyTarget,
    *,
    context: FloatArray | None = None,
) -> FloatArray:
    """Predicted ITL at the target's percentile with ``replicas`` decode replicas."""
    batch = batch_quantile(mean_batch(profile, load, replicas, context=context), target.quantile)
    return np.asarray(profile.step.base_s.value + _per_sequence_cost(profile, load, context) * batch)


def size(
    profile: Profile,
    load: Load,
    target: LatencyTarget,
    *,
    max_utilisation: float = 1.0,
    context: FloatArray | None = None,
) -> PhaseSizing:
    """Fewest decode replicas whose mean batch is at most ``max_utilisation`` of the largest allowed one."""
    caps = max_batches(profile, load, target, context=context)
    names = np.array(list(caps))
    stacked = np.stack(list(caps.values()))
    cap = stacked.min(axis=0)
    binding = names[stacked.argmin(axis=0)]
    n_max = np.minimum(largest_mean_batch(cap, target.quantile), max_utilisation * cap)
    attainable = caps["itl"] >= 1.0
    per_seq = _per_sequence_cost(profile, load, context)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = load.rate * load.output_tokens * (profile.step.base_s.value / n_max + per_seq)
    replicas = np.where(load.rate > 0, np.ceil(needed - 1e-9), 0.0)
    replicas = np.where(attainable & (n_max > 0), replicas, np.inf)
    served = np.where(np.isfinite(replicas) & (replicas > 0), replicas, 1.0)
    batch = mean_batch(profile, load, served, context=context)
    return PhaseSizing(
        replicas=replicas,
        ttft_s=np.zeros_like(needed),
        itl_s=itl(profile, load, served, target, context=context),
        utilisation=np.where(np.isfinite(replicas), batch / np.maximum(cap, 1e-12), 0.0),
        binding=np.where(~attainable, "unattainable", np.where(load.rate <= 0, "no-load", binding)).astype(
            np.str_
        ),
    )
