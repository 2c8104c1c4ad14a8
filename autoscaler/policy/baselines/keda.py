"""Baseline: KEDA scaling on waiting requests, as the vLLM production-stack ships it.

Source: peers.md C.2 (production-stack ``helm/templates/scaledobject-vllm.yaml`` and its values) and E.3 (KEDA
Prometheus scaler), E.5 (the HPA that KEDA drives). Per replica set (each phase of a disaggregated pool has
its own ScaledObject, as KServe's LLMInferenceService creates them; an aggregated pool has one):

- trigger ``type: prometheus``, query ``sum(vllm:num_requests_waiting{...})`` over the set's pods,
  ``threshold: '5'`` as an AverageValue target: the HPA proposes ``ceil(waiting / 5)`` outside its 10 %
  tolerance band and applies its default behaviour (``hpa.py``: scale up at once by max(100 %, 4 pods) per
  15 s, scale down after a 300 s stabilization window);
- ``ignoreNullValues: true`` (KEDA's default): a missing or non-finite result reads as 0 waiting requests,
  so missing data lets the HPA scale down to the minimum after the stabilization window (KEDA's
  ``fallback`` only applies to query errors, which this mode turns into zeros);
- 0 <-> 1 belongs to KEDA, not the HPA: with ``minReplicaCount: 0`` the set is activated when a trigger
  exceeds ``activationThreshold`` (default 0) and deactivated ``cooldownPeriod`` (production-stack: 360 s)
  after the last active poll. The queue metric does not exist while no engine runs, so a lone queue
  trigger never wakes a set at 0; production-stack's scale-to-zero recipe adds a keep-alive trigger
  ``sum(rate(vllm:num_incoming_requests_total[1m]) > bool 0)`` with threshold 1, modelled by
  ``keepalive_trigger`` on the arrival rate;
- KEDA polls its triggers for activation every ``pollingInterval`` (production-stack: 15 s); the HPA reads
  the metric through KEDA's metrics adapter at its own 15 s sync. Between polls a set at 0 stays at 0.

Known weaknesses kept on purpose: the signal is a queue, so replicas grow only once requests already wait
(TTFT is spent), a queue under 5 x replicas never scales up however slow decode gets, and KV pressure
without a queue is invisible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from autoscaler.core.decision import Decision, PhaseDecision, Reason
from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy.baselines import hpa
from autoscaler.policy.baselines.common import bounds_for, finite
from autoscaler.policy.bounds import ReplicaBounds


@dataclasses.dataclass(frozen=True, slots=True)
class KedaSettings:
    bounds: Mapping[Phase, ReplicaBounds]  # minReplicaCount / maxReplicaCount per ScaledObject
    threshold: float = 5.0  # production-stack default trigger threshold
    activation_threshold: float = 0.0  # KEDA default activationThreshold
    polling_interval_s: float = 15.0  # production-stack pollingInterval (KEDA's own default is 30 s)
    cooldown_period_s: float = 360.0  # production-stack cooldownPeriod (KEDA's own default is 300 s)
    keepalive_trigger: bool = False  # production-stack scale-to-zero recipe
    hpa: hpa.HpaSettings = dataclasses.field(default_factory=hpa.HpaSettings)


@dataclasses.dataclass(frozen=True, slots=True)
class KedaPhaseState:
    hpa: hpa.HpaState = dataclasses.field(default_factory=hpa.HpaState)
    last_poll: float | None = None
    last_active: float | None = None  # KEDA's lastActiveTime; the cooldown counts from here


@dataclasses.dataclass(frozen=True, slots=True)
class KedaState:
    phases: Mapping[Phase, KedaPhaseState] = dataclasses.field(default_factory=dict)


class KedaPolicy:
    def __init__(self, settings: KedaSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        return "keda"

    def initial_state(self) -> KedaState:
        return KedaState()

    def step(self, observation: Observation, state: KedaState, *, now: float) -> tuple[Decision, KedaState]:
        decisions: dict[Phase, PhaseDecision] = {}
        states: dict[Phase, KedaPhaseState] = {}
        for phase, signals in observation.phases.items():
            previous = state.phases.get(phase, KedaPhaseState())
            decisions[phase], states[phase] = self._step_phase(phase, signals, previous, now)
        return Decision(pool=observation.pool, time=now, phases=decisions), KedaState(phases=states)

    def _step_phase(
        self, phase: Phase, signals: PhaseSignals, state: KedaPhaseState, now: float
    ) -> tuple[PhaseDecision, KedaPhaseState]:
        settings = self._settings
        bounds = bounds_for(settings.bounds, phase)
        current = signals.replicas.current
        waiting = finite(signals.queue_length) or 0.0  # ignoreNullValues: true
        metrics = [(waiting, settings.threshold)]
        if settings.keepalive_trigger:
            metrics.append((1.0 if (finite(signals.arrival_rate) or 0.0) > 0 else 0.0, 1.0))
        poll_due = state.last_poll is None or now - state.last_poll >= settings.polling_interval_s
        if poll_due:
            active = any(value > settings.activation_threshold for value, _ in metrics)
            last_active = now if active or state.last_active is None else state.last_active
            state = dataclasses.replace(state, last_poll=now, last_active=last_active)
            if bounds.minimum == 0:
                woken = _activation(
                    current=current,
                    active=active,
                    idle_s=now - last_active,
                    cooldown_s=settings.cooldown_period_s,
                )
                if woken is not None:
                    return woken, state

        existing = signals.replicas.ready + signals.replicas.starting
        proposal = max(
            hpa.average_value_proposal(
                metric_total=value,
                target_per_replica=target,
                existing_pods=existing,
                tolerance=settings.hpa.tolerance,
            )
            for value, target in metrics
        )
        # KEDA gives its HPA minReplicas = max(minReplicaCount, 1): the HPA never goes to 0 by itself.
        hpa_bounds = ReplicaBounds(max(bounds.minimum, 1), max(bounds.maximum, 1))
        outcome = hpa.reconcile(
            proposal=proposal,
            current=current,
            bounds=hpa_bounds,
            settings=settings.hpa,
            state=state.hpa,
            now=now,
        )
        message = f"{waiting:g} waiting / threshold {settings.threshold:g} -> {proposal}; {outcome.message}"
        decision = PhaseDecision(outcome.replicas, current, outcome.reason, message)
        return decision, dataclasses.replace(state, hpa=outcome.state)


def _activation(*, current: int, active: bool, idle_s: float, cooldown_s: float) -> PhaseDecision | None:
    """KEDA's own 0 <-> 1 step (scale executor), or ``None`` when the HPA owns the decision."""
    if current == 0:
        if active:
            return PhaseDecision(1, 0, Reason.ACTIVATED, "a trigger is above its activation threshold")
        return PhaseDecision(0, 0, Reason.INACTIVE, "no trigger is above its activation threshold")
    if not active and idle_s > cooldown_s:  # lastActiveTime + cooldownPeriod before now
        return PhaseDecision(0, current, Reason.DEACTIVATED, f"no trigger active for {idle_s:.0f} s")
    return None
