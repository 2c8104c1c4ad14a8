"""What every baseline shares: replica bounds per phase, reading optional signals, and hold decisions."""

from __future__ import annotations

import math
from collections.abc import Mapping

from autoscaler.core.decision import PhaseDecision, Reason
from autoscaler.core.phases import Phase
from autoscaler.policy.bounds import ReplicaBounds


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
