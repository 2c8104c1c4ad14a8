"""Baseline: llm-d Workload Variant Autoscaler, V2 token-based saturation analyzer, with the HPA on top.

Source: llm-d.md 1.4 (b) and 1.5 (WVA@main ``internal/engines/analyzers/saturation_v2``, the engine's
threshold post-step and the CostAware optimizer), default since WVA v0.9.0. Per phase (role-aware: the
prefill and decode replica sets are sized separately, an aggregated set is the role "both"), every cycle:

- per-replica capacity in tokens ``min(k1, k2)``: ``k1 = KV capacity x kvCacheThreshold (0.8)``; ``k2`` by
  WVA's priority chain: (1) observed, when a replica's queue reaches ``queueLengthThreshold`` (5), the
  tokens it holds; (2) historical, the rolling mean of the last 10 observed values for the same output
  length bucket (<100, <500, >=500 tokens); (3) derived from the engine arguments,
  ``N = min(B x O / (I + O), max_num_seqs)``, ``k2 = N x (I + O / 2)`` with ``B = max_num_batched_tokens``;
  (4) ``k1``. The history is keyed by model, accelerator, GPUs and output bucket, not by role, so prefill
  and decode observations share it (as in WVA);
- demand = tokens in use (``kv_usage x KV capacity x ready replicas``) + waiting requests x charge, the
  charge being ``I`` for prefill and ``I + O`` for decode and aggregated sets;
- required ``RC = max(0, demand / 0.85 - anticipated supply)`` with anticipated supply counting replicas
  still starting; spare ``SC = max(0, supply - demand / 0.70)`` over ready replicas only;
- CostAware optimizer (one variant per role): ``RC > 0`` adds ``ceil(RC / capacity)`` replicas (up to max);
  otherwise ``SC > 0`` removes ``floor(SC / capacity)`` (down to min);
- the result is ``wva_desired_replicas``, which an HPA reads as an AverageValue target of 1 (Prometheus
  Adapter path, ``config/samples/prometheus-adapter-values.yaml``): the HPA keeps its 10 % tolerance band,
  so a desired count within 10 % of the pods that exist is ignored. Its ``behavior`` is the one in WVA's
  samples (also the P/D per-role samples): scale up with no window, 10 pods per 15 s; scale down after a
  300 s window, 1 pod per 60 s. So although the optimizer may ask to remove several replicas, they leave one
  a minute. (The Helm chart defaults, 240 s windows both ways and 10 pods per 150 s, are not used here.)

WVA's engine runs every 15 s (``GLOBAL_OPT_INTERVAL`` in the shipped ConfigMap) and the HPA syncs every
15 s, so one 15 s cadence drives both. Not modelled: the llm-d EPP flow-control (scheduler) queue demand,
which WVA@main's engine does not pass to the analyzer anyway ("currently always passes nil"), scale to and
from zero (minimum 1 replica, WVA's default ``minReplicas``), and per-replica medians (the observation
carries means over replicas).

Missing or non-finite saturation inputs (KV use, queue, token means) or no ready replica: WVA has no
replica metrics to analyze and publishes no new desired count; the HPA, lacking a fresh metric, holds.

Known weaknesses kept on purpose: it reacts to tokens already in the KV cache and to queues (no forecast,
no latency target); the 10 % HPA band hides small changes on large sets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from autoscaler.core.decision import Decision, PhaseDecision, Reason
from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy.baselines import hpa
from autoscaler.policy.baselines.common import bounds_for, finite, hold
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.profiles.schema import Profile

SAMPLE_BEHAVIOR = hpa.HpaBehavior(
    scale_up=hpa.HpaScalingRules(
        stabilization_window_s=0.0, policies=(hpa.HpaScalingPolicy(hpa.RateKind.PODS, 10, 15.0),)
    ),
    scale_down=hpa.HpaScalingRules(
        stabilization_window_s=300.0, policies=(hpa.HpaScalingPolicy(hpa.RateKind.PODS, 1, 60.0),)
    ),
)
"""HPA behaviour of WVA's samples (llm-d.md 1.5 and 1.8)."""

OUTPUT_BUCKETS = ((100.0, "short"), (500.0, "medium"))  # WVA constants.go; >= 500 tokens is "long"


@dataclasses.dataclass(frozen=True, slots=True)
class WvaSettings:
    bounds: Mapping[Phase, ReplicaBounds]
    kv_cache_threshold: float = 0.80
    queue_length_threshold: float = 5.0
    scale_up_threshold: float = 0.85
    scale_down_boundary: float = 0.70
    history_size: int = 10  # RollingAverageWindowSize
    hpa: hpa.HpaSettings = dataclasses.field(
        default_factory=lambda: hpa.HpaSettings(behavior=SAMPLE_BEHAVIOR)
    )

    def __post_init__(self) -> None:
        if any(b.minimum < 1 for b in self.bounds.values()):
            raise ValueError("the WVA baseline does not model scale to zero: minimum replicas must be >= 1")


@dataclasses.dataclass(frozen=True, slots=True)
class WvaState:
    hpa: Mapping[Phase, hpa.HpaState] = dataclasses.field(default_factory=dict)
    k2_history: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)  # by output bucket


@dataclasses.dataclass(frozen=True, slots=True)
class Saturation:
    """The analyzer's view of one phase, in tokens."""

    per_replica_capacity: float
    k2: float
    k2_source: str  # observed, historical, derived or fallback-k1
    bucket: str  # output length bucket the k2 history is kept under
    demand: float
    required: float
    spare: float


class WvaPolicy:
    def __init__(self, *, profile: Profile, settings: WvaSettings) -> None:
        self._profile = profile
        self._settings = settings

    @property
    def name(self) -> str:
        return "wva"

    def initial_state(self) -> WvaState:
        return WvaState()

    def step(self, observation: Observation, state: WvaState, *, now: float) -> tuple[Decision, WvaState]:
        decisions: dict[Phase, PhaseDecision] = {}
        hpa_states = dict(state.hpa)
        history = dict(state.k2_history)
        for phase, signals in observation.phases.items():
            phase_hpa = state.hpa.get(phase, hpa.HpaState())
            if (
                phase_hpa.last_sync is not None
                and now - phase_hpa.last_sync < self._settings.hpa.sync_period_s
            ):
                decisions[phase] = hold(
                    signals.replicas.current, reason=Reason.HOLD_SYNC_PERIOD, message="between WVA/HPA cycles"
                )
                continue
            decisions[phase], hpa_states[phase], saturation = self._step_phase(
                phase, signals, phase_hpa, history, now
            )
            if saturation is not None and saturation.k2_source == "observed":
                recent = (*history.get(saturation.bucket, ()), saturation.k2)
                history[saturation.bucket] = recent[-self._settings.history_size :]
        return Decision(pool=observation.pool, time=now, phases=decisions), WvaState(hpa_states, history)

    def _step_phase(
        self,
        phase: Phase,
        signals: PhaseSignals,
        phase_hpa: hpa.HpaState,
        history: Mapping[str, tuple[float, ...]],
        now: float,
    ) -> tuple[PhaseDecision, hpa.HpaState, Saturation | None]:
        settings = self._settings
        current = signals.replicas.current
        saturation = self._analyze(phase, signals, history)
        if saturation is None:
            return (
                hold(
                    current,
                    reason=Reason.HOLD_MISSING_SIGNALS,
                    message="no saturation metrics: no new desired count",
                ),
                phase_hpa,
                None,
            )
        bounds = bounds_for(settings.bounds, phase)
        desired = _optimize(saturation, current=current, bounds=bounds)
        existing = signals.replicas.ready + signals.replicas.starting
        proposal = hpa.average_value_proposal(
            metric_total=desired,
            target_per_replica=1.0,
            existing_pods=existing,
            tolerance=settings.hpa.tolerance,
        )
        outcome = hpa.reconcile(
            proposal=proposal, current=current, bounds=bounds, settings=settings.hpa, state=phase_hpa, now=now
        )
        message = (
            f"demand {saturation.demand:.0f} tokens, capacity {saturation.per_replica_capacity:.0f}/replica "
            f"(k2 {saturation.k2_source}), required {saturation.required:.0f}, spare {saturation.spare:.0f}: "
            f"wva_desired_replicas {desired}; HPA: {outcome.message}"
        )
        return PhaseDecision(outcome.replicas, current, outcome.reason, message), outcome.state, saturation

    def _analyze(
        self, phase: Phase, signals: PhaseSignals, history: Mapping[str, tuple[float, ...]]
    ) -> Saturation | None:
        """Saturation V2 for one role (``None``: nothing to analyze); ``history``: observed k2 by bucket."""
        settings = self._settings
        kv_usage = finite(signals.kv_usage)
        queue = finite(signals.queue_length)
        prompt = finite(signals.prompt_tokens_mean)
        output = finite(signals.output_tokens_mean)
        ready = signals.replicas.ready
        if kv_usage is None or queue is None or prompt is None or output is None or ready == 0:
            return None
        kv_tokens = self._profile.kv_capacity_tokens
        tokens_in_use = kv_usage * kv_tokens  # per replica
        k1 = kv_tokens * settings.kv_cache_threshold
        bucket = _output_bucket(output)
        if queue / ready >= settings.queue_length_threshold and tokens_in_use > 0:
            k2, source = tokens_in_use, "observed"
        elif history.get(bucket):
            k2, source = sum(history[bucket]) / len(history[bucket]), "historical"
        else:
            k2, source = self._derived_k2(prompt, output)
        capacity = min(k1, k2)
        charge = prompt if phase is Phase.PREFILL else prompt + output
        demand = tokens_in_use * ready + queue * charge
        anticipated = capacity * (ready + signals.replicas.starting)
        return Saturation(
            per_replica_capacity=capacity,
            k2=k2,
            k2_source=source,
            bucket=bucket,
            demand=demand,
            required=max(0.0, demand / settings.scale_up_threshold - anticipated),
            spare=max(0.0, capacity * ready - demand / settings.scale_down_boundary),
        )

    def _derived_k2(self, prompt: float, output: float) -> tuple[float, str]:
        if output <= 0:
            return self._profile.kv_capacity_tokens * self._settings.kv_cache_threshold, "fallback-k1"
        steady = min(
            self._profile.max_num_batched_tokens * output / (prompt + output),
            float(self._profile.max_num_seqs),
        )
        return steady * (prompt + output / 2), "derived"


def _optimize(saturation: Saturation, *, current: int, bounds: ReplicaBounds) -> int:
    """CostAware with a single variant per role: add for required capacity, else remove spare capacity."""
    capacity = saturation.per_replica_capacity
    if capacity <= 0:
        return current
    if saturation.required > 0:
        return min(current + math.ceil(saturation.required / capacity), max(bounds.maximum, current))
    if saturation.spare > 0:
        removable = max(0, current - bounds.minimum)
        return current - min(math.floor(saturation.spare / capacity), removable)
    return current


def _output_bucket(output_tokens: float) -> str:
    for limit, name in OUTPUT_BUCKETS:
        if output_tokens < limit:
            return name
    return "long"
