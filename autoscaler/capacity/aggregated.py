"""Aggregated serving: one replica set does prefill and decode, sharing each step's token budget.

vLLM's scheduler runs the decoding sequences first and fills the rest of the step's token budget with
prefill chunks (chunked prefill). Per replica, prefill compute takes a share ``w_p = (λ/R)·work`` of every
second, so decode steps stretch by ``1/(1 - w_p)`` and the Little's-law batch grows accordingly. ITL is the
percentile of a request's mean inter-token latency (its TPOT, as the simulator and DistServe report it): a
decode step at the percentile batch plus the chunk time spread over the steps that carry one. Per-token ITL
tails are higher in aggregated mode, since a step with a whole chunk is slow; that is P/D's argument. TTFT is
a G/G/c queue whose servers are the replicas' prefill lanes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from autoscaler.capacity import decode, prefill, queueing, search
from autoscaler.capacity.load import FloatArray, Load
from autoscaler.capacity.result import PhaseSizing
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile


class _Replica:
    """Per-replica quantities at ``replicas`` replicas (arrays over the load grid)."""

    def __init__(self, profile: Profile, load: Load, replicas: FloatArray, slo: Slo) -> None:
        base = profile.step.base_s.value
        prefill_step = profile.prefill.per_step_s.value  # what a step that carries a chunk costs on top
        per_token = profile.prefill.per_token_s.value
        attention = profile.prefill.per_attention_pair_s.value
        budget = profile.limits.max_num_batched_tokens.value
        u = load.uncached_fraction
        self.per_seq = decode._per_sequence_cost(profile, load)
        safe_r = np.maximum(replicas, 1.0)
        arrivals = load.rate / safe_r
        pairs_share = 1.0 - (1.0 - u) ** 2
        prefill_work = (
            per_token * u * load.prompt_tokens + attention * pairs_share * load.prompt_second_moment
        )
        # Each prompt pays the prefill step overhead at least once per budget-sized chunk (a lower bound:
        # the lane left beside the decodes is narrower, which only the batch below decides).
        self.prefill_share = arrivals * (
            prefill_work + prefill_step * np.maximum(1.0, u * load.prompt_tokens / budget)
        )
        outputs = arrivals * load.output_tokens
        stretch = np.maximum(1.0 - self.prefill_share, 1e-9)
        self.pressure = self.prefill_share + outputs * self.per_seq
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_batch = outputs * base / stretch / (1.0 - outputs * self.per_seq / stretch)
        self.stable = self.pressure < 1.0
        self.batch = np.where(self.stable, mean_batch, np.inf)
        self.batch_q = decode.batch_quantile(np.where(self.stable, mean_batch, 0.0), slo.itl.quantile)
        lane = np.maximum(budget - self.batch, 1.0)  # prefill tokens per step
        chunks = np.maximum(1.0, u * load.prompt_tokens / lane)
        chunk_time = prefill_work / chunks + prefill_step
        decode_step = base + self.per_seq * self.batch_q
        mixed_mean = base + self.per_seq * np.where(self.stable, mean_batch, 0.0) + chunk_time
        chunk_fraction = np.minimum(1.0, arrivals * chunks * mixed_mean)
        self.itl = np.where(self.stable, decode_step + chunk_fraction * chunk_time, np.inf)

        def latency(prompt: FloatArray) -> FloatArray:
            steps = np.ceil(np.maximum(u * prompt, 1.0) / lane)
            own = per_token * u * prompt + attention * pairs_share * prompt**2
            step = base + prefill_step + self.per_seq * np.where(self.stable, mean_batch, 0.0)
            return np.asarray(steps * step + own)

        occupancy = prefill_work + (u * load.prompt_tokens / lane) * (
            base + prefill_step + self.per_seq * mean_batch
        )
        occupancy = np.where(self.stable, occupancy, np.inf)
        wait = queueing.wait_quantile(
            servers=safe_r,
            arrival_rate=load.rate,
            mean_service_s=occupancy,
            arrival_cv=load.arrival_cv,
            service_cv=np.sqrt(load.prompt_cv**2 + prefill.STEP_BATCHING_SCV),
            quantile=slo.ttft.quantile,
        )
        self.ttft = np.maximum(
            latency(load.prompt_quantile(slo.ttft.quantile)), latency(load.prompt_tokens) + wait
        )


def size(profile: Profile, load: Load, slo: Slo, *, max_utilisation: float = 1.0) -> PhaseSizing:
    """Fewest replicas meeting both targets with the engine's pressure at most ``max_utilisation``."""
    caps = decode.max_batches(profile, load, slo.itl)
    kv_cap = np.minimum(caps["kv-capacity"], caps["max-num-seqs"])

    def satisfied(replicas: FloatArray) -> search.BoolArray:
        r = _Replica(profile, load, replicas, slo)
        return np.asarray(
            r.stable
            & (r.pressure <= max_utilisation)
            & (r.itl <= slo.itl.seconds)
            & (r.ttft <= slo.ttft.seconds)
            & (r.batch_q <= kv_cap)
        )

    unloaded = _Replica(profile, load.with_rate(np.zeros_like(load.rate)), np.ones_like(load.rate), slo)
    attainable = (unloaded.ttft <= slo.ttft.seconds) & (caps["itl"] >= 1.0)
    replicas = search.fewest_replicas(
        satisfied, start=np.zeros_like(load.rate), active=attainable & (load.rate > 0)
    )
    replicas = np.where(load.rate > 0, np.where(attainable, replicas, np.inf), 0.0)
    served = np.where(np.isfinite(replicas) & (replicas > 0), replicas, 1.0)
    one_less = _Replica(profile, load, np.maximum(served - 1.0, 1.0), slo)
    binding = np.select(
        [
            ~attainable,
            load.rate <= 0,
            np.isinf(replicas),
            served <= 1.0,
            ~one_less.stable | (one_less.batch_q > kv_cap),
            one_less.itl > slo.itl.seconds,
        ],
        ["unattainable", "no-load", "replica-cap", "one-replica", "kv-capacity", "itl"],
        default="ttft",
    )
    at = predict(profile, load, slo, served)
    return dataclasses.replace(
        at,
        replicas=replicas,
        utilisation=np.where(np.isfinite(replicas), at.utilisation, 0.0),
        binding=binding.astype(np.str_),
    )


def predict(profile: Profile, load: Load, slo: Slo, replicas: FloatArray) -> PhaseSizing:
    """TTFT and ITL at the SLO percentiles with ``replicas`` aggregated replicas."""
    at = _Replica(profile, load, replicas, slo)
    caps = decode.max_batches(profile, load, slo.itl)
    kv_cap = np.minimum(caps["kv-capacity"], caps["max-num-seqs"])
    return PhaseSizing(
        replicas=replicas,
        ttft_s=at.ttft,
        itl_s=at.itl,
        utilisation=np.maximum(at.pressure, at.batch / np.maximum(kv_cap, 1e-9)),
        binding=np.full(np.shape(replicas), "fixed").astype(np.str_),
    )
