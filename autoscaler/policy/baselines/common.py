"""What every baseline shares: replica bounds per phase, reading optional signals, and hold decisions."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from autoscaler.core.decision import PhaseDecision, Reason
from autoscaler.core.phases import Phase


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaBounds:
    """Min/max replicas of one phase's replica set (HPA minReplicas/maxReplicas, KEDA min/maxReplicaCount)."""

    minimum: int
    maximum: int

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum:
            raise ValueError(f"replica bounds need 0 <= minimum <= maximum, got {self}")

    def clamp(self, replicas: int) -> int:
        return max(self.minimum, min(self.maximum, replicas))


def bounds_for(bounds: Mapping[Phase, ReplicaBounds], phase: Phase) -> ReplicaBounds:
    """The bounds of ``phase``; a phase the policy was not configured for is a wiring error, not a hold."""
    try:
        return bounds[phase]
    except KeyError:
        raise KeyError(f"no replica bounds configured for phase {phase.value!r}") from None


def finite(value: float | None) -> float | None:
    """``value`` when it is a finite number, else ``None`` (NaN and infinities read as missing)."""
    if value is None or not math.isfinite(value):
        return None
    return value


def hold(current: int, *, reason: Reason, message: str) -> PhaseDecision:
    return PhaseDecision(replicas=current, previous=current, reason=reason, message=message)
