"""The custom resource's status: per-phase replicas and reasons, calibration, and the four conditions.

Conditions follow ``metav1.Condition``: a condition's ``lastTransitionTime`` changes only when its status
does, and every condition carries the ``observedGeneration`` of the spec it describes.

- ``Ready``: the spec is valid and its targets and profile resolve;
- ``SignalsHealthy``: Prometheus answered with fresh, finite signals for every phase;
- ``ScalingActive``: the controller is acting on its decisions (writing scale in ``direct`` mode, publishing
  in ``advisory`` mode); False while it holds, e.g. refusing ``direct`` mode beside an HPA;
- ``ScalingLimited``: a decision was clamped by bounds, the GPU budget, a stabilization window or a rate
  limit (the reason says which).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.core.decision import Reason
from autoscaler.core.phases import Phase

READY, SIGNALS, ACTIVE, LIMITED = "Ready", "SignalsHealthy", "ScalingActive", "ScalingLimited"
_MAX_MESSAGE = 32768


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseStatus:
    desired: int
    current: int
    ready: int
    pending: int
    draining: int
    reason: Reason
    message: str
    correction: float

    def body(self) -> dict[str, Any]:
        return {
            "desiredReplicas": self.desired,
            "currentReplicas": self.current,
            "readyReplicas": self.ready,
            "pendingReplicas": self.pending,
            "drainingReplicas": self.draining,
            "reason": self.reason,
            "message": self.message[:_MAX_MESSAGE],
            "correction": round(self.correction, 4),
        }


def rfc3339(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(int(epoch_s), datetime.UTC).isoformat().replace("+00:00", "Z")


def conditions(
    new: Sequence[Condition], *, previous: Sequence[Mapping[str, Any]], generation: int, now: float
) -> list[dict[str, Any]]:
    """The conditions as the API stores them; unchanged statuses keep their transition time."""
    before = {str(c.get("type")): c for c in previous if isinstance(c, Mapping)}
    out = []
    for condition in new:
        status = "Unknown" if condition.status is None else str(condition.status)
        old = before.get(condition.type)
        since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
        out.append(
            {
                "type": condition.type,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": since or rfc3339(now),
                "reason": condition.reason,
                "message": condition.message[:_MAX_MESSAGE],
            }
        )
    return out


def body(
    *,
    generation: int,
    now: float,
    conditions_now: list[dict[str, Any]],
    phases: Mapping[Phase, PhaseStatus] | None = None,
    notes: Sequence[str] = (),
    decided: bool = False,
) -> dict[str, Any]:
    """The status to merge. Without a decision the last phases and decision time stay as they were."""
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions_now}
    if phases is not None:
        # every phase is named: one the spec no longer has is removed (null in a merge patch)
        status["phases"] = {
            phase.value: (phases[phase].body() if phase in phases else None) for phase in Phase
        }
        status["notes"] = list(notes)
    if decided:
        status["lastDecisionTime"] = rfc3339(now)
    return status


def limited(reasons: Mapping[Phase, Reason]) -> Condition:
    hits = {phase: reason for phase, reason in reasons.items() if reason.limiting}
    if not hits:
        return Condition(LIMITED, False, "NotLimited", "every phase is at its recommendation")
    reason = next(iter(hits.values())) if len(set(hits.values())) == 1 else "SeveralLimits"
    return Condition(LIMITED, True, reason, ", ".join(f"{p.value}: {r}" for p, r in hits.items()))
