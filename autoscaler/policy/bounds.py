"""Replica bounds of one phase, shared by our policy and the baselines (one type, one check)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaBounds:
    """Min/max replicas of one phase's replica set (HPA minReplicas/maxReplicas, KEDA min/maxReplicaCount).

    The defaults are ours: one replica stays up unless scale to zero is asked for (minimum 0)."""

    minimum: int = 1
    maximum: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum:
            raise ValueError(f"need 0 <= min <= max replicas, got min={self.minimum} max={self.maximum}")

    def clamp(self, replicas: int) -> int:
        return max(self.minimum, min(self.maximum, replicas))
