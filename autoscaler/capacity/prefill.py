"""Prefill sizing: replicas so that the TTFT percentile target holds, queueing included.

Each prefill replica is a server; the router spreads requests over ``c`` replicas, which behaves close to
one G/G/c queue. A request's *work* is the replica time it consumes: its uncached tokens and attention pairs,
plus its share of the step overhead (steps are packed up to the token budget under load). Its *latency once
started* is an unloaded prefill (whole steps, chunked). TTFT at percentile q is approximated as

    max(lone(P_q), lone(P̄) + W_q) + KV transfer (P/D) + one decode step (P/D)

with ``P_q`` the prompt-length percentile and ``W_q`` the G/G/c waiting-time percentile (Erlang C with the
Allen-Cunneen correction): the tail is either a long prompt or a long wait. Demand is reduced by the prefix
hit rate: cached tokens cost neither linear work nor their share of attention.
Peers that divide mean load by throughput never add replicas when queueing breaks TTFT; this model does.
"""

from __future__ import annotations

import numpy as np

from autoscaler.capacity import queueing, search
from autoscaler.capacity.load import FloatArray, Load
from autoscaler.capacity.result import PhaseSizing
from autoscaler.core.slo import LatencyTarget
from autoscaler.profiles.schema import Profile

STEP_BATCHING_SCV = 1.0
"""Squared CV added to the prefill service for step batching.

A replica packs every waiting prompt into its next step, so a prompt arriving mid-step waits for the step in
progress and then for its whole batch, not just its own tokens. That behaves like one more unit of squared
service variability: fitted against the engine model (prompts of 690 to 6,000 tokens, token utilisation 0.3
to 0.9), it turns a TTFT p90 far too low into a close one (``benchmarks/model_vs_sim.py``).
"""


def _linear_and_quadratic(profile: Profile, load: Load) -> tuple[FloatArray, FloatArray]:
    """Work per request ≈ lin·P + quad·P² for a prompt of P tokens (uncached fraction u)."""
    u = load.uncached_fraction
    budget = profile.limits.max_num_batched_tokens.value
    step = profile.step.base_s.value + profile.prefill.per_step_s.value
    lin = (step / budget + profile.prefill.per_token_s.value) * u
    quad = profile.prefill.per_attention_pair_s.value * (1.0 - (1.0 - u) ** 2)
    return lin, quad


def work(profile: Profile, load: Load) -> tuple[FloatArray, FloatArray]:
    """Mean replica-seconds per request, and the coefficient of variation of the service it gets
    (its work's variability plus step batching, ``STEP_BATCHING_SCV``)."""
    lin, quad = _linear_and_quadratic(profile, load)
    mean = lin * load.prompt_tokens + quad * load.prompt_second_moment
    at_mean = lin * load.prompt_tokens + quad * load.prompt_tokens**2
    slope = lin * load.prompt_tokens + 2.0 * quad * load.prompt_tokens**2  # P·dwork/dP at the mean
    cv = load.prompt_cv * slope / np.maximum(at_mean, 1e-12)
    return mean, np.sqrt(cv**2 + STEP_BATCHING_SCV)


def lone_time(profile: Profile, load: Load, prompt: FloatArray) -> FloatArray:
    """Unloaded prefill latency for a prompt of ``prompt`` tokens at the load's hit rate."""
    u = load.uncached_fraction
    return profile.prefill_times(u * prompt, (1.0 - u) * prompt)


def _handoff(profile: Profile, prompt: FloatArray, *, disaggregated: bool) -> FloatArray:
    """P/D: the KV moves to the decode replica, which then produces the first token in one step."""
    if not disaggregated:
        return np.zeros_like(prompt)
    per_token = profile.kv_cache.bytes_per_token.value / profile.kv_transfer.bandwidth_bytes_per_s.value
    return profile.kv_transfer.latency_s.value + per_token * prompt + profile.step.base_s.value


def _unqueued(
    profile: Profile, load: Load, target: LatencyTarget, *, disaggregated: bool
) -> tuple[FloatArray, FloatArray]:
    """TTFT of a percentile-length prompt, and of a mean-length one, both without queueing."""
    p_q = load.prompt_quantile(target.quantile)
    long_prompt = lone_time(profile, load, p_q) + _handoff(profile, p_q, disaggregated=disaggregated)
    mean_prompt = lone_time(profile, load, load.prompt_tokens) + _handoff(
        profile, load.prompt_tokens, disaggregated=disaggregated
    )
    return long_prompt, mean_prompt


def ttft(
    profile: Profile, load: Load, replicas: FloatArray, target: LatencyTarget, *, disaggregated: bool
) -> FloatArray:
    """Predicted TTFT at the target's percentile with ``replicas`` prefill replicas."""
    mean_work, work_cv = work(profile, load)
    wait = queueing.wait_quantile(
        servers=np.maximum(replicas, 1.0),
        arrival_rate=load.rate,
        mean_service_s=mean_work,
        arrival_cv=load.arrival_cv,
        service_cv=work_cv,
        quantile=target.quantile,
    )
    long_prompt, mean_prompt = _unqueued(profile, load, target, disaggregated=disaggregated)
    return np.maximum(long_prompt, mean_prompt + wait)


def size(
    profile: Profile, load: Load, target: LatencyTarget, *, disaggregated: bool, max_utilisation: float = 1.0
) -> PhaseSizing:
    """Fewest prefill replicas meeting the TTFT target at every point of ``load``.

    The search starts from the fewest replicas that keep utilisation below ``max_utilisation`` (1: the
    queue merely stable, the pure SLO bound; a policy passes less as headroom); points whose unqueued TTFT
    already misses the target are unattainable (inf).
    """
    mean_work, _ = work(profile, load)
    offered = load.rate * mean_work
    stable = np.floor(offered / max_utilisation) + 1.0
    attainable = np.maximum(*_unqueued(profile, load, target, disaggregated=disaggregated)) <= target.seconds
    replicas = search.fewest_replicas(
        lambda r: ttft(profile, load, r, target, disaggregated=disaggregated) <= target.seconds,
        start=np.where(load.rate > 0, stable, 0.0),
        active=attainable & (load.rate > 0),
    )
    replicas = np.where(attainable, replicas, np.inf)
    predicted = ttft(
        profile, load, np.where(np.isfinite(replicas), replicas, 1.0), target, disaggregated=disaggregated
    )
    binding = np.select(
        [~attainable, load.rate <= 0, np.isinf(replicas), replicas > stable],
        ["unattainable", "no-load", "replica-cap", "ttft-queueing"],
        default="throughput",
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        utilisation = np.where((replicas > 0) & np.isfinite(replicas), offered / replicas, 0.0)
    return PhaseSizing(
        replicas=replicas,
        ttft_s=predicted,
        itl_s=np.zeros_like(predicted),
        utilisation=utilisation,
        binding=binding.astype(np.str_),
    )
