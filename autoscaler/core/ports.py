"""Ports: the narrow interfaces through which drivers give the pure layers time, randomness and I/O.

The pure layers never read a clock or draw an unseeded random number; they receive ``now`` as an argument
and an ``Rng`` built from a seed. Drivers implement ``SignalSource`` and ``ScaleTarget`` with real systems
(Prometheus, Kubernetes) or with the simulator's models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on the driver's clock (simulated or monotonic)."""
        ...


class Rng(Protocol):
    """The subset of ``random.Random`` the pure layers use; always constructed from a seed."""

    def random(self) -> float: ...

    def choice(self, seq: Sequence[T]) -> T: ...


class SignalSource(Protocol):
    def observe(self, *, pool: str, now: float) -> Observation: ...


class ScaleTarget(Protocol):
    def replicas(self) -> Mapping[Phase, int]: ...

    def scale(self, replicas: Mapping[Phase, int]) -> None: ...
