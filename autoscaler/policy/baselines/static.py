"""Baseline: static replicas, what a deployment without an autoscaler runs.

Each phase keeps the replica count it was given, whatever the load; provisioned for the peak it meets the
SLO at the highest cost, provisioned for the mean it fails at peaks. Missing signals change nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from autoscaler.core.decision import Decision, PhaseDecision, Reason
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase


@dataclasses.dataclass(frozen=True, slots=True)
class StaticSettings:
    replicas: Mapping[Phase, int]

    def __post_init__(self) -> None:
        if any(n < 0 for n in self.replicas.values()):
            raise ValueError(f"static replicas cannot be negative: {dict(self.replicas)}")


class StaticPolicy:
    def __init__(self, settings: StaticSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        return "static"

    def initial_state(self) -> None:
        return None

    def step(self, observation: Observation, state: None, *, now: float) -> tuple[Decision, None]:
        phases = {}
        for phase, signals in observation.phases.items():
            if phase not in self._settings.replicas:
                raise KeyError(f"no static replica count configured for phase {phase.value!r}")
            fixed = self._settings.replicas[phase]
            phases[phase] = PhaseDecision(
                fixed, signals.replicas.current, Reason.STATIC, f"fixed at {fixed} replicas"
            )
        return Decision(pool=observation.pool, time=now, phases=phases), state
