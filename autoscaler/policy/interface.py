"""The interface every scaling policy implements: ours, the baselines, and anything a user plugs in.

A policy is a pure step function with explicit state: the driver (live controller or simulator) keeps the
state between steps and passes ``now``. Same inputs, same outputs: that is what lets the simulator replay
exactly what the controller would have done.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from autoscaler.core.decision import Decision
from autoscaler.core.observation import Observation

S = TypeVar("S")


class ScalingPolicy(Protocol[S]):
    @property
    def name(self) -> str: ...

    def initial_state(self) -> S: ...

    def step(self, observation: Observation, state: S, *, now: float) -> tuple[Decision, S]: ...
