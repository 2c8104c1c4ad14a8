"""What the policy answers: desired replicas per phase, each with the reason that produced it.

``Reason`` is the one vocabulary of every policy (ours and the baselines) and of what the controller
reports (status, conditions, Events): the stage that last set the count. Consumers ask it what kind of
reason it is (``fail_static``, ``limiting``) rather than reading its spelling. ``Adjustment`` names the
mechanisms of our sizing that acted on a phase's count in a step (a decision can carry several).
"""

from __future__ import annotations

import dataclasses
import enum

from autoscaler.core.phases import Phase


class Reason(enum.StrEnum):
    # fail static: the signals cannot drive a change
    HOLD_MISSING_SIGNALS = "HoldMissingSignals"
    HOLD_STALE_SIGNALS = "HoldStaleSignals"
    HOLD_CONTRADICTORY_SIGNALS = "HoldContradictorySignals"
    # a policy's own cadence: between its cycles nothing is decided
    HOLD_SYNC_PERIOD = "HoldSyncPeriod"
    HOLD_ADJUSTMENT_INTERVAL = "HoldAdjustmentInterval"
    # the load set the count
    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    STEADY = "Steady"
    NO_TRAFFIC = "NoTraffic"
    STATIC = "Static"
    # a limit set the count
    WITHIN_TOLERANCE = "WithinTolerance"
    TOO_FEW_REPLICAS = "TooFewReplicas"
    TOO_MANY_REPLICAS = "TooManyReplicas"
    BUDGET_LIMITED = "BudgetLimited"
    SCALE_UP_STABILIZED = "ScaleUpStabilized"
    SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
    SCALE_UP_LIMITED = "ScaleUpLimited"
    SCALE_DOWN_LIMITED = "ScaleDownLimited"
    SLO_UNATTAINABLE = "SloUnattainable"
    # KEDA's own 0 <-> 1 activation, and an HPA that leaves a target at 0 alone
    ACTIVATED = "Activated"
    INACTIVE = "Inactive"
    DEACTIVATED = "Deactivated"
    SCALING_DISABLED = "ScalingDisabled"

    @property
    def fail_static(self) -> bool:
        """The signals were unusable: the count was held, nothing was learned or recorded."""
        return self in _FAIL_STATIC

    @property
    def limiting(self) -> bool:
        """A bound, the budget, a window, a rate limit or the SLO itself kept the count off the load's."""
        return self in _LIMITING


_FAIL_STATIC = frozenset(
    {Reason.HOLD_MISSING_SIGNALS, Reason.HOLD_STALE_SIGNALS, Reason.HOLD_CONTRADICTORY_SIGNALS}
)
_LIMITING = frozenset(
    {
        Reason.TOO_FEW_REPLICAS,
        Reason.TOO_MANY_REPLICAS,
        Reason.BUDGET_LIMITED,
        Reason.SCALE_UP_STABILIZED,
        Reason.SCALE_DOWN_STABILIZED,
        Reason.SCALE_UP_LIMITED,
        Reason.SCALE_DOWN_LIMITED,
        Reason.SLO_UNATTAINABLE,
    }
)


def direction(replicas: int, current: int) -> Reason:
    """The plain reason for a change that no limit shaped."""
    if replicas > current:
        return Reason.SCALE_UP
    return Reason.SCALE_DOWN if replicas < current else Reason.STEADY


class Adjustment(enum.StrEnum):
    """A mechanism of our sizing that moved a phase's count away from the plain model at the rate read."""

    INFLIGHT_GROWTH = "InflightGrowth"  # demand is completions plus the growth of requests in flight
    UPSTREAM_DEMAND = "UpstreamDemand"  # decode sized for prefill's demand, which reaches it next
    TREND = "Trend"  # a rising trend was extrapolated over the start-up horizon
    TREND_CAPPED = "TrendCapped"  # ... its extrapolation capped at a share of the level
    SPIKE_SERVED = "SpikeServed"  # the newest rate is an excursion: sized for as it is, not extrapolated
    BACKLOG_ON_REPLICAS = "BacklogOnReplicas"  # prefill's queue is in busy engines: new ones can't take it
    BACKLOG_DRAIN = "BacklogDrain"  # a decode or aggregated queue adds the rate that drains it
    BACKLOG_INCOMING = "BacklogIncoming"  # decode sized for the prefill backlog about to reach it
    KV_OBSERVED = "KvObserved"  # decode context from the KV the engines report per running sequence
    INFEASIBLE_EXCLUDED = "InfeasibleExcluded"  # sized for the requests that can meet the TTFT target
    CALIBRATED = "Calibrated"  # the profile's times were corrected by observed latency
    STARTING_RELEASED = "StartingReleased"  # the ready replicas hold the load: those still starting go


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseDecision:
    replicas: int
    previous: int
    reason: Reason
    message: str  # one human sentence that says why
    adjustments: tuple[Adjustment, ...] = ()

    @property
    def change(self) -> int:
        return self.replicas - self.previous


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    pool: str
    time: float
    phases: dict[Phase, PhaseDecision]
    notes: tuple[str, ...] = ()  # decisions that concern the pool as a whole, e.g. how a GPU budget was split

    def replicas(self) -> dict[Phase, int]:
        return {phase: d.replicas for phase, d in self.phases.items()}
