"""The Kubernetes HorizontalPodAutoscaler, as KEDA and WVA baselines run on top of it.

Both KEDA and llm-d WVA only produce a metric; the HPA turns it into replicas. This module is that HPA,
written after ``pkg/controller/podautoscaler`` (``replica_calculator.go`` and ``horizontal.go``, the
``Behavior`` code path; peers.md E.5, style-anchors.md section 1), with its clock replaced by ``now`` and its
per-key maps replaced by an explicit ``HpaState``:

1. every ``sync_period_s`` (controller default 15 s) one reconcile; between syncs the replicas stay put;
2. an AverageValue external metric proposes ``ceil(total / target)``, unless the ratio
   ``total / (target x existing pods)`` lies within the tolerance band ``[1 - 0.1, 1 + 0.1]``, in which case
   it proposes the existing pod count (``GetExternalPerPodMetricReplicas``);
3. if the current replicas are 0 while the minimum is not, the HPA does nothing (scaling disabled); if they
   are outside [min, max] it moves them inside without looking at the metric;
4. stabilization: the recommendation is clamped between the minimum of the proposals in the scale-up window
   and the maximum of those in the scale-down window (``stabilizeRecommendationWithBehaviors``); a new HPA
   seeds its history with the current replicas, so it cannot scale down during its first window;
5. rate limits: the replicas a policy allows are counted from the replicas at the start of its period
   (current minus scale-ups plus scale-downs inside the period); ``Max`` selects the most permissive policy
   (``convertDesiredReplicasWithBehaviorRate``); the result is kept within [min, max].

The defaults are the ones the API server fills in for a ``behavior`` block (scale up: no window, Percent
100 and Pods 4 per 15 s, Max; scale down: 300 s window, Percent 100 per 15 s). An HPA without any
``behavior`` block takes an older path that limits scale-up to ``max(2 x current, 4)`` per sync and uses the
same 300 s down window; at the 15 s sync the two differ by at most a few pods in one step.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from autoscaler.core.decision import Reason, direction
from autoscaler.policy.bounds import ReplicaBounds


class RateKind(enum.StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(enum.StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


@dataclasses.dataclass(frozen=True, slots=True)
class HpaScalingPolicy:
    """One HPA scaling policy: change by at most ``value`` pods or percent per ``period_s``."""

    kind: RateKind
    value: int
    period_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class HpaScalingRules:
    stabilization_window_s: float
    policies: tuple[HpaScalingPolicy, ...]
    select: SelectPolicy = SelectPolicy.MAX

    @property
    def longest_period_s(self) -> float:
        return max((policy.period_s for policy in self.policies), default=0.0)


@dataclasses.dataclass(frozen=True, slots=True)
class HpaBehavior:
    scale_up: HpaScalingRules
    scale_down: HpaScalingRules


DEFAULT_BEHAVIOR = HpaBehavior(
    scale_up=HpaScalingRules(
        stabilization_window_s=0.0,
        policies=(HpaScalingPolicy(RateKind.PERCENT, 100, 15.0), HpaScalingPolicy(RateKind.PODS, 4, 15.0)),
    ),
    scale_down=HpaScalingRules(
        stabilization_window_s=300.0, policies=(HpaScalingPolicy(RateKind.PERCENT, 100, 15.0),)
    ),
)
"""autoscaling/v2 defaults (kubernetes.io HPA docs, "Default Behavior"; peers.md E.5)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HpaSettings:
    behavior: HpaBehavior = DEFAULT_BEHAVIOR
    tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance
    sync_period_s: float = 15.0  # --horizontal-pod-autoscaler-sync-period


@dataclasses.dataclass(frozen=True, slots=True)
class TimedCount:
    time: float
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class HpaState:
    """What the HPA controller keeps in memory per target, as values."""

    recommendations: tuple[TimedCount, ...] = ()
    scale_up_events: tuple[TimedCount, ...] = ()
    scale_down_events: tuple[TimedCount, ...] = ()
    last_sync: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HpaOutcome:
    replicas: int
    reason: Reason
    message: str
    state: HpaState


def average_value_proposal(
    *, metric_total: float, target_per_replica: float, existing_pods: int, tolerance: float
) -> int:
    """Replicas an AverageValue external metric asks for (``GetExternalPerPodMetricReplicas``).

    ``existing_pods`` is the scale subresource's ``status.replicas`` (pods that exist, ready or not).
    """
    if existing_pods > 0:
        ratio = metric_total / (target_per_replica * existing_pods)
        if 1.0 - tolerance <= ratio <= 1.0 + tolerance:
            return existing_pods
    return math.ceil(metric_total / target_per_replica)


def reconcile(
    *,
    proposal: int,
    current: int,
    bounds: ReplicaBounds,
    settings: HpaSettings,
    state: HpaState,
    now: float,
) -> HpaOutcome:
    """One HPA sync for one target: ``proposal`` is the metric's replica count, ``current`` spec.replicas."""
    if state.last_sync is not None and now - state.last_sync < settings.sync_period_s:
        wait = settings.sync_period_s - (now - state.last_sync)
        return HpaOutcome(current, Reason.HOLD_SYNC_PERIOD, f"next HPA sync in {wait:.0f} s", state)
    state = dataclasses.replace(state, last_sync=now)
    if not state.recommendations:  # recordInitialRecommendation: a new HPA starts from what runs
        state = dataclasses.replace(state, recommendations=(TimedCount(now, current),))
    if current == 0 and bounds.minimum != 0:
        message = "replicas are 0 and minReplicas is not: the HPA leaves the target"
        return HpaOutcome(0, Reason.SCALING_DISABLED, message, state)
    reason: Reason | None
    if current > bounds.maximum:
        desired, reason = bounds.maximum, Reason.TOO_MANY_REPLICAS
        message = "current replicas above maxReplicas"
    elif current < bounds.minimum:
        desired, reason = bounds.minimum, Reason.TOO_FEW_REPLICAS
        message = "current replicas below minReplicas"
    else:
        stabilized, reason, message = _stabilize(proposal, current, settings.behavior, state, now)
        state = _record_recommendation(state, proposal, settings.behavior, now)
        desired, limit_reason, limit_message = _rate_limit(
            stabilized, current, bounds, settings.behavior, state, now
        )
        if limit_reason:
            reason, message = limit_reason, limit_message
        elif reason is None:
            reason = direction(desired, current)
            message = f"metric proposes {proposal}, within the behaviour limits"
    return HpaOutcome(
        desired, reason, message, _record_scale_event(state, current, desired, settings.behavior, now)
    )


def _stabilize(
    proposal: int, current: int, behavior: HpaBehavior, state: HpaState, now: float
) -> tuple[int, Reason | None, str]:
    up_cutoff = now - behavior.scale_up.stabilization_window_s
    down_cutoff = now - behavior.scale_down.stabilization_window_s
    up_floor = min([proposal, *(r.count for r in state.recommendations if r.time > up_cutoff)])
    down_ceiling = max([proposal, *(r.count for r in state.recommendations if r.time > down_cutoff)])
    stabilized = min(max(current, up_floor), down_ceiling)
    if stabilized < proposal:
        window = behavior.scale_up.stabilization_window_s
        return (
            stabilized,
            Reason.SCALE_UP_STABILIZED,
            f"lowest proposal in the last {window:.0f} s is {stabilized}",
        )
    if stabilized > proposal:
        window = behavior.scale_down.stabilization_window_s
        return (
            stabilized,
            Reason.SCALE_DOWN_STABILIZED,
            f"highest proposal in the last {window:.0f} s is {stabilized}",
        )
    return stabilized, None, ""


def _rate_limit(
    desired: int, current: int, bounds: ReplicaBounds, behavior: HpaBehavior, state: HpaState, now: float
) -> tuple[int, Reason | None, str]:
    if desired > current:
        limit = max(current, _period_limit(current, behavior.scale_up, state, now, up=True))
        if bounds.maximum > limit:
            ceiling, reason = limit, Reason.SCALE_UP_LIMITED
            message = f"scale-up policies allow at most {limit} replicas now"
        else:
            ceiling, reason, message = bounds.maximum, Reason.TOO_MANY_REPLICAS, "capped at maxReplicas"
        if desired > ceiling:
            return ceiling, reason, message
    elif desired < current:
        limit = min(current, _period_limit(current, behavior.scale_down, state, now, up=False))
        if bounds.minimum < limit:
            floor, reason = limit, Reason.SCALE_DOWN_LIMITED
            message = f"scale-down policies allow at least {limit} replicas now"
        else:
            floor, reason, message = bounds.minimum, Reason.TOO_FEW_REPLICAS, "held at minReplicas"
        if desired < floor:
            return floor, reason, message
    return desired, None, ""


def _period_limit(current: int, rules: HpaScalingRules, state: HpaState, now: float, *, up: bool) -> int:
    """``calculateScaleUpLimitWithScalingRules`` / ``calculateScaleDownLimitWithBehaviors``."""
    if rules.select is SelectPolicy.DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        cutoff = now - policy.period_s
        added = sum(e.count for e in state.scale_up_events if e.time > cutoff)
        removed = sum(e.count for e in state.scale_down_events if e.time > cutoff)
        start = current - added + removed
        if policy.kind is RateKind.PODS:
            proposals.append(start + policy.value if up else start - policy.value)
        elif up:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    most_permissive = max if up else min
    least_permissive = min if up else max
    pick = most_permissive if rules.select is SelectPolicy.MAX else least_permissive
    return pick(proposals)


def _record_recommendation(state: HpaState, proposal: int, behavior: HpaBehavior, now: float) -> HpaState:
    horizon = max(behavior.scale_up.stabilization_window_s, behavior.scale_down.stabilization_window_s)
    kept = tuple(r for r in state.recommendations if r.time > now - horizon)
    return dataclasses.replace(state, recommendations=(*kept, TimedCount(now, proposal)))


def _record_scale_event(
    state: HpaState, current: int, desired: int, behavior: HpaBehavior, now: float
) -> HpaState:
    if desired > current:
        horizon = behavior.scale_up.longest_period_s
        kept = tuple(e for e in state.scale_up_events if e.time > now - horizon)
        return dataclasses.replace(state, scale_up_events=(*kept, TimedCount(now, desired - current)))
    if desired < current:
        horizon = behavior.scale_down.longest_period_s
        kept = tuple(e for e in state.scale_down_events if e.time > now - horizon)
        return dataclasses.replace(state, scale_down_events=(*kept, TimedCount(now, current - desired)))
    return state
