"""The simulated cluster: replica sets per phase, each replica an engine with a Kubernetes-like lifecycle.

Lifecycle of a replica: ``PENDING`` from the moment it is asked for, for ``pending_delay_s`` (scheduling,
node provisioning), then ``STARTING`` for a start-up delay drawn from the profile (container start, image
pull, weight load: Normal(mean, spread) clipped at zero), then ``READY`` (the placer may send it requests),
``DRAINING`` once scale-down chose it (no new requests; it finishes what it has), then ``GONE``. GPU-hours
count every replica from the moment it is asked for until it is gone, because that is what a cluster pays
for. The policy sees pending and starting replicas together as "starting" (asked for, not ready).

Scale-down first cancels replicas that are not ready yet (newest first: they cost GPU time and serve no one),
then drains the ready replicas with the fewest requests in flight, so the placer and the scaler agree on
exactly which replica leaves (the pod-deletion-cost handshake of the live controller).
"""

from __future__ import annotations

import enum
import random

from autoscaler.core.phases import Phase
from autoscaler.engine.replica import ReplicaEngine
from autoscaler.profiles.schema import Profile
from autoscaler.routing.interface import Placer

__all__ = ["Cluster", "ReplicaState", "SimReplica"]


class ReplicaState(enum.IntEnum):
    PENDING = 0
    STARTING = 1
    READY = 2
    DRAINING = 3
    GONE = 4


_NOT_READY = (ReplicaState.PENDING, ReplicaState.STARTING)
_ACTIVE = (ReplicaState.PENDING, ReplicaState.STARTING, ReplicaState.READY)


class SimReplica:
    __slots__ = ("created", "engine", "gone", "name", "phase", "ready_at", "state", "version")

    def __init__(
        self, name: str, phase: Phase, engine: ReplicaEngine, *, created: float, state: ReplicaState
    ) -> None:
        self.name = name
        self.phase = phase
        self.engine = engine
        self.state = state
        self.created = created
        self.ready_at = float("nan")
        self.gone = float("nan")
        self.version = 0  # of the engine event last pushed to the driver's heap


class Cluster:
    """Replica sets of one pool, kept in step with the placer. The driver owns time and the event heap."""

    def __init__(
        self,
        profile: Profile,
        *,
        phases: tuple[Phase, ...],
        placer: Placer,
        rng: random.Random,
        block_tokens: int,
        pending_delay_s: float = 0.0,
    ) -> None:
        self.profile = profile
        self.phases = phases
        self.placer = placer
        self._rng = rng
        self._block_tokens = block_tokens
        self._pending_delay_s = pending_delay_s
        self.replicas: dict[str, SimReplica] = {}  # every replica ever asked for, in creation order
        self.live: list[SimReplica] = []  # the ones not gone, in creation order
        self._serial = 0

    def active(self, phase: Phase) -> list[SimReplica]:
        """Replicas that count toward the replica set's size (pending, starting or ready; not draining)."""
        return [r for r in self.live if r.phase is phase and r.state in _ACTIVE]

    def count(self, phase: Phase, *states: ReplicaState) -> int:
        return sum(1 for r in self.live if r.phase is phase and r.state in states)

    def scale_to(self, phase: Phase, replicas: int, *, now: float) -> list[tuple[float, float, SimReplica]]:
        """Ask for ``replicas`` in ``phase``; returns (start time, ready time, replica) for each one added."""
        active = self.active(phase)
        started: list[tuple[float, float, SimReplica]] = []
        for _ in range(replicas - len(active)):
            replica = self._create(phase, now)
            startup = self.profile.startup
            delay = max(0.0, self._rng.gauss(startup.mean_s.value, startup.spread_s.value))
            starts = now + self._pending_delay_s
            started.append((starts, starts + delay, replica))
        surplus = len(active) - replicas
        if surplus > 0:
            for replica in reversed(active):
                if surplus and replica.state in _NOT_READY:
                    self._gone(replica, now)
                    surplus -= 1
            ready = [r for r in active if r.state is ReplicaState.READY]
            ready.sort(key=lambda r: self.placer.in_flight(r.name))
            for replica in ready[:surplus]:
                replica.state = ReplicaState.DRAINING
                self.placer.set_draining(replica.name, True)
                self.release_if_drained(replica, now)
        return started

    def mark_started(self, replica: SimReplica) -> None:
        """A pending replica was scheduled and its containers start (unless it was cancelled meanwhile)."""
        if replica.state is ReplicaState.PENDING:
            replica.state = ReplicaState.STARTING

    def mark_ready(self, replica: SimReplica, now: float) -> bool:
        """A replica finished starting; False when it was cancelled meanwhile."""
        if replica.state not in _NOT_READY:
            return False
        replica.state = ReplicaState.READY
        replica.ready_at = now
        self.placer.add_endpoint(
            replica.name,
            phase=replica.phase,
            kv_capacity_tokens=int(self.profile.kv_capacity_tokens),
            now=now,
        )
        return True

    def release_if_drained(self, replica: SimReplica, now: float) -> None:
        if (
            replica.state is ReplicaState.DRAINING
            and replica.engine.in_flight == 0
            and self.placer.in_flight(replica.name) == 0
        ):
            self.placer.remove_endpoint(replica.name)
            self._gone(replica, now)

    def gpu_seconds(self, until: float) -> float:
        """GPU-seconds paid over [0, ``until``]: every replica from asked-for to gone."""
        total = 0.0
        for replica in self.replicas.values():
            end = until if replica.state is not ReplicaState.GONE else min(replica.gone, until)
            total += max(0.0, end - replica.created)
        return total * self.profile.gpus_per_replica

    def _create(self, phase: Phase, now: float) -> SimReplica:
        engine = ReplicaEngine(
            self.profile, prefill_only=phase is Phase.PREFILL, block_tokens=self._block_tokens
        )
        state = ReplicaState.PENDING if self._pending_delay_s > 0 else ReplicaState.STARTING
        replica = SimReplica(f"{phase.value}-{self._serial}", phase, engine, created=now, state=state)
        self._serial += 1
        self.replicas[replica.name] = replica
        self.live.append(replica)
        return replica

    def _gone(self, replica: SimReplica, now: float) -> None:
        replica.state = ReplicaState.GONE
        replica.gone = now
        self.live.remove(replica)
