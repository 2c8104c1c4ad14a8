"""What a cycle says about itself: its status, its Events and its warnings, as pure functions.

``CycleFacts`` is everything a decided cycle read, decided and did; ``decided_status`` and ``warnings`` turn
it into the status to merge and the warnings to announce. ``outcome_event`` is the Event for one write,
emitted as soon as the write is done (a later failure in the same cycle must not lose it).
``held_status`` is the status of a cycle that ended before deciding (invalid spec, missing target, API
server trouble).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.adapters.kubernetes.pods import PodState
from autoscaler.adapters.kubernetes.scale import ScaleState
from autoscaler.config.autoscaler_resource import AutoscalerResource, Mode
from autoscaler.controller import drain, status
from autoscaler.controller.actuation import Draining, Outcome, Scaled
from autoscaler.core.decision import Decision, PhaseDecision
from autoscaler.core.observation import ReplicaCounts
from autoscaler.core.phases import Phase
from autoscaler.policy import actuation
from autoscaler.policy.settings import PolicySettings


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseView:
    """One phase's workload as read at the start of the cycle."""

    scale: ScaleState
    pods: tuple[PodState, ...]

    def counts(self) -> ReplicaCounts:
        """As the actuation model reports them, the simulator's counts likewise."""
        return actuation.counts(drain.views(self.pods, None), current=self.scale.replicas)

    @property
    def pending(self) -> tuple[PodState, ...]:
        return tuple(p for p in self.pods if p.phase == "Pending" and not p.deleting)


@dataclasses.dataclass(frozen=True, slots=True)
class CycleFacts:
    resource: AutoscalerResource
    settings: PolicySettings
    views: Mapping[Phase, PhaseView]
    decision: Decision
    outcomes: Mapping[Phase, Outcome]  # empty unless the cycle actuated (direct mode, not refused)
    corrections: Mapping[Phase, float]  # the policy's calibration after this step
    foreign: tuple[str, ...] = ()  # other autoscalers on the targets (direct mode refused)
    signal_error: str | None = None  # why Prometheus could not be read


@dataclasses.dataclass(frozen=True, slots=True)
class EventNote:
    reason: str
    note: str
    action: str


def decided_status(facts: CycleFacts, *, previous: Sequence[Mapping[str, Any]], now: float) -> dict[str, Any]:
    decision = facts.decision
    phases = {
        phase: status.PhaseStatus(
            desired=decision.phases[phase].replicas,
            current=view.scale.replicas,
            ready=view.counts().ready,
            pending=len(view.pending),
            draining=_draining(view, facts.outcomes.get(phase)),
            reason=decision.phases[phase].reason,
            message=decision.phases[phase].message,
            correction=facts.corrections.get(phase, 1.0),
        )
        for phase, view in facts.views.items()
    }
    new = [
        status.Condition(status.READY, True, "Resolved", "the spec is valid and its targets exist"),
        _signals_condition(facts),
        _active_condition(facts),
        status.limited({phase: d.reason for phase, d in decision.phases.items()}),
    ]
    generation = facts.resource.generation
    return status.body(
        generation=generation,
        now=now,
        conditions_now=status.conditions(new, previous=previous, generation=generation, now=now),
        phases=phases,
        notes=decision.notes,
        decided=True,
    )


def held_status(
    *,
    reason: str,
    message: str,
    ready: bool,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    now: float,
) -> dict[str, Any]:
    new = [
        status.Condition(status.READY, ready, "Resolved" if ready else reason, message),
        status.Condition(status.SIGNALS, None, "NotRead", "no signals were read this cycle"),
        status.Condition(status.ACTIVE, False, reason, message),
        status.Condition(status.LIMITED, False, "NotLimited", "no decision this cycle"),
    ]
    return status.body(
        generation=generation,
        now=now,
        conditions_now=status.conditions(new, previous=previous, generation=generation, now=now),
    )


def outcome_event(phase: Phase, outcome: Outcome, decided: PhaseDecision) -> EventNote | None:
    """The Event for a replica count written or a drain begun; none for anything else."""
    if isinstance(outcome, Scaled):
        removed = f" (removed {', '.join(outcome.removed)})" if outcome.removed else ""
        reason = "ScaledUp" if outcome.after > outcome.before else "ScaledDown"
        note = (
            f"{phase.value} {outcome.before} -> {outcome.after}{removed}: {decided.reason}: {decided.message}"
        )
        return EventNote(reason, note, "Scale")
    if isinstance(outcome, Draining) and outcome.marked:
        note = (
            f"{phase.value}: draining {', '.join(outcome.marked)} before scaling "
            f"{decided.previous} -> {decided.replicas}: {decided.message}"
        )
        return EventNote("Draining", note, "Drain")
    return None


def warnings(facts: CycleFacts, *, now: float) -> dict[str, str]:
    """Conditions worth a Warning Event, by reason (announced when they appear, not every cycle)."""
    found = {}
    if facts.foreign:
        found["ForeignAutoscaler"] = _foreign_message(facts.foreign)
    if facts.signal_error is not None:
        found["PrometheusUnavailable"] = f"holding: {facts.signal_error}"
    else:
        for phase, d in facts.decision.phases.items():
            if d.reason.fail_static:
                found[d.reason] = f"{phase.value}: {d.message}"
    patience = 2 * facts.settings.profile.startup.mean_s.value
    for phase, view in facts.views.items():
        stuck = [p.name for p in view.pending if p.created is not None and now - p.created > patience]
        if stuck:
            found["ReplicasPending"] = (
                f"{phase.value}: {', '.join(stuck)} Pending for over {patience:.0f}s; counted as starting "
                "supply and removed first on scale-down"
            )
    return found


def _draining(view: PhaseView, outcome: Outcome | None) -> int:
    """Pods marked draining once the cycle has acted (a scale-down removed them; a scale-up unmarked them)."""
    if isinstance(outcome, Draining):
        return len(outcome.victims)
    if outcome is not None:
        return 0
    return sum(1 for p in view.pods if p.draining and not p.deleting)


def _signals_condition(facts: CycleFacts) -> status.Condition:
    if facts.signal_error is not None:
        return status.Condition(status.SIGNALS, False, "PrometheusUnavailable", facts.signal_error)
    holds = {p: d for p, d in facts.decision.phases.items() if d.reason.fail_static}
    if holds:
        reason = next(iter(holds.values())).reason
        message = "; ".join(f"{p.value}: {d.message}" for p, d in holds.items())
        return status.Condition(status.SIGNALS, False, reason, message)
    return status.Condition(status.SIGNALS, True, "SignalsFresh", "every phase has fresh, finite signals")


def _active_condition(facts: CycleFacts) -> status.Condition:
    if facts.foreign:
        return status.Condition(status.ACTIVE, False, "ForeignAutoscaler", _foreign_message(facts.foreign))
    holds = [d for d in facts.decision.phases.values() if d.reason.fail_static]
    if holds:
        return status.Condition(status.ACTIVE, False, holds[0].reason, holds[0].message)
    draining = {p: o for p, o in facts.outcomes.items() if isinstance(o, Draining)}
    if draining:
        message = "; ".join(f"{p.value}: waiting for {', '.join(o.waiting)}" for p, o in draining.items())
        return status.Condition(status.ACTIVE, True, "Draining", message)
    if facts.resource.spec.mode is Mode.ADVISORY:
        message = "publishing desired replicas for an HPA or KEDA to act on"
        return status.Condition(status.ACTIVE, True, "Advisory", message)
    summary = ", ".join(f"{p.value} {d.previous}->{d.replicas}" for p, d in facts.decision.phases.items())
    return status.Condition(status.ACTIVE, True, "Actuating", summary)


def _foreign_message(foreign: tuple[str, ...]) -> str:
    return (
        f"refusing direct mode: {', '.join(foreign)} already scales the target; "
        "remove it or set spec.mode to advisory"
    )
