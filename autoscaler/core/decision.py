"""What the policy answers: desired replicas per phase, each with the reason that produced it."""

from __future__ import annotations

import dataclasses

from autoscaler.core.phases import Phase


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseDecision:
    replicas: int
    previous: int
    reason: str  # a short machine-readable tag, e.g. "ScaleUp", "HoldStaleSignals", "ScaleDownStabilized"
    message: str  # one human sentence that says why

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
