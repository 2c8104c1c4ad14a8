"""Policies for simulator tests: fixed replica counts, or a schedule of counts over time."""

from __future__ import annotations

import dataclasses

from autoscaler.core.decision import Decision, PhaseDecision
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase


@dataclasses.dataclass(frozen=True)
class ScriptedPolicy:
    """Asks for the replicas of the last ``(start, replicas)`` entry whose start is at or before now."""

    schedule: tuple[tuple[float, dict[Phase, int]], ...]
    name: str = "scripted"

    @classmethod
    def fixed(cls, replicas: dict[Phase, int]) -> ScriptedPolicy:
        return cls(schedule=((0.0, replicas),), name="fixed")

    def initial_state(self) -> None:
        return None

    def step(self, observation: Observation, state: None, *, now: float) -> tuple[Decision, None]:
        wanted = [replicas for start, replicas in self.schedule if start <= now][-1]
        phases = {
            phase: PhaseDecision(
                replicas=wanted[phase],
                previous=signals.replicas.current,
                reason="Scripted",
                message="the test",
            )
            for phase, signals in observation.phases.items()
        }
        return Decision(pool=observation.pool, time=now, phases=phases), None
