"""The simulated cluster: replica sets per phase, each replica an engine with a Kubernetes-like lifecycle.

Lifecycle of a replica: ``PENDING`` from the moment it is asked for, for ``pending_delay_s`` (scheduling,
node provisioning), then ``STARTING`` for a start-up delay drawn from the profile (container start, image
pull, weight load: Normal(mean, spread) clipped at zero), then ``READY`` (the placer may send it requests),
then ``GONE``. A replica chosen for removal carries a draining mark (``draining_since``); a ready one with
the mark is ``DRAINING``: the placer sends it nothing new and it finishes what it has.

Scale-up and scale-down follow the live controller exactly, through the same actuation model
(``autoscaler.policy.actuation``): victims are chosen by the ReplicaSet's order (not started first, then
fewest requests in flight, least cached prefix state, newest); the asked-for count stays where it was, and
every victim keeps counting and being paid for, until all of them have drained or the drain time-out has
passed, at a control step, as the controller only acts in its cycles; a decision that no longer asks for
the scale-down lifts the marks, and those replicas take requests again at once. GPU-hours count every
replica from the moment it is asked for until it is gone, drain included, because that is what a cluster
pays for; ``lifetimes`` gives each replica's span for whoever reports them.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random

from autoscaler.core.observation import ReplicaCounts
from autoscaler.core.phases import Phase
from autoscaler.engine.replica import ReplicaEngine
from autoscaler.policy import actuation
from autoscaler.profiles.schema import Profile
from autoscaler.routing.interface import Placer

__all__ = ["Cluster", "Lifetime", "ReplicaState", "Resize", "SimReplica"]


class ReplicaState(enum.IntEnum):
    PENDING = 0
    STARTING = 1
    READY = 2
    DRAINING = 3  # ready, and marked for removal
    GONE = 4


_NOT_READY = (ReplicaState.PENDING, ReplicaState.STARTING)
_SERVING = (ReplicaState.READY, ReplicaState.DRAINING)  # known to the placer


class SimReplica:
    __slots__ = (
        "created",
        "draining_since",
        "engine",
        "gone",
        "name",
        "phase",
        "ready_at",
        "state",
        "version",
    )

    def __init__(
        self, name: str, phase: Phase, engine: ReplicaEngine, *, created: float, state: ReplicaState
    ) -> None:
        self.name = name
        self.phase = phase
        self.engine = engine
        self.state = state
        self.created = created
        self.ready_at = math.nan
        self.gone = math.nan
        self.draining_since: float | None = None  # when its draining mark was placed; None: not marked
        self.version = 0  # of the engine event last pushed to the driver's heap


@dataclasses.dataclass(frozen=True, slots=True)
class Lifetime:
    """One replica's span, for accounting: paid from ``created`` to ``gone`` (inf while it still runs)."""

    name: str
    phase: Phase
    created: float
    ready_at: float  # NaN when it never became ready
    draining_since: float | None  # the mark it carried when it went (or carries now)
    gone: float

    def seconds(self, until: float) -> float:
        """Seconds paid for over [0, ``until``]."""
        return max(0.0, min(self.gone, until) - self.created)


@dataclasses.dataclass(frozen=True, slots=True)
class Resize:
    """What a control step did to one phase."""

    started: tuple[tuple[float, float, SimReplica], ...] = ()  # (start time, ready time, replica) added
    removed: tuple[SimReplica, ...] = ()  # gone when the count dropped
    cut_short: tuple[SimReplica, ...] = ()  # of those, the ones still serving (the drain timed out)
    resized: bool = False  # the asked-for count changed


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
        drain_timeout_s: float = actuation.DEFAULT_DRAIN_TIMEOUT_S,
    ) -> None:
        if drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {drain_timeout_s}")
        self.profile = profile
        self.phases = phases
        self.placer = placer
        self._rng = rng
        self._block_tokens = block_tokens
        self._pending_delay_s = pending_delay_s
        self._drain_timeout_s = drain_timeout_s
        self.replicas: dict[str, SimReplica] = {}  # every replica ever asked for, in creation order
        self.live: list[SimReplica] = []  # the ones not gone, in creation order
        self._asked: dict[Phase, int] = dict.fromkeys(phases, 0)  # spec.replicas per phase
        self._serial = 0

    def asked(self, phase: Phase) -> int:
        """The replica set's asked-for count (``spec.replicas``): draining victims count until they go."""
        return self._asked[phase]

    def counts(self, phase: Phase) -> ReplicaCounts:
        """The replica counts the policy is told, as the controller reports them."""
        return actuation.counts(self._views(phase), current=self._asked[phase])

    def count(self, phase: Phase, *states: ReplicaState) -> int:
        return sum(1 for r in self.live if r.phase is phase and r.state in states)

    def scale_to(self, phase: Phase, replicas: int, *, now: float) -> Resize:
        """One control step's actuation of ``phase`` toward ``replicas`` (see the module docstring)."""
        current = self._asked[phase]
        step = actuation.actuate(
            self._views(phase),
            current=current,
            desired=replicas,
            ordered=False,
            now=now,
            drain_timeout_s=self._drain_timeout_s,
        )
        replicas_by_name = self.replicas
        for name in step.unmark:
            self._unmark(replicas_by_name[name])
        for name in step.mark:
            self._mark(replicas_by_name[name], now)
        self._asked[phase] = step.replicas
        if step.replicas < current:
            removed = tuple(replicas_by_name[name] for name in step.victims)
            cut_short = tuple(r for r in removed if self._serving(r))
            for replica in removed:
                self._gone(replica, now)
            return Resize(removed=removed, cut_short=cut_short, resized=True)
        started = tuple(self._start(phase, now) for _ in range(step.replicas - current))
        return Resize(started=started, resized=step.replicas != current)

    def mark_started(self, replica: SimReplica) -> None:
        """A pending replica was scheduled and its containers start (unless it was removed meanwhile)."""
        if replica.state is ReplicaState.PENDING:
            replica.state = ReplicaState.STARTING

    def mark_ready(self, replica: SimReplica, now: float) -> bool:
        """A replica finished starting; False when it was removed meanwhile. One marked while it started
        joins the placer draining, as the router sees the mark."""
        if replica.state not in _NOT_READY:
            return False
        replica.ready_at = now
        self.placer.add_endpoint(
            replica.name,
            phase=replica.phase,
            kv_capacity_tokens=int(self.profile.kv_capacity_tokens),
            now=now,
        )
        if replica.draining_since is None:
            replica.state = ReplicaState.READY
        else:
            replica.state = ReplicaState.DRAINING
            self.placer.set_draining(replica.name, True)
        return True

    def lifetimes(self) -> tuple[Lifetime, ...]:
        """Every replica ever asked for, in creation order."""
        return tuple(
            Lifetime(
                name=r.name,
                phase=r.phase,
                created=r.created,
                ready_at=r.ready_at,
                draining_since=r.draining_since,
                gone=r.gone if r.state is ReplicaState.GONE else math.inf,
            )
            for r in self.replicas.values()
        )

    def gpu_seconds(self, until: float) -> float:
        """GPU-seconds paid over [0, ``until``]: every replica from asked-for to gone, drain included."""
        return sum(life.seconds(until) for life in self.lifetimes()) * self.profile.gpus_per_replica

    def _views(self, phase: Phase) -> list[actuation.ReplicaView]:
        in_flight = self.placer.in_flight
        return [
            actuation.ReplicaView(
                name=r.name,
                created=r.created,
                pending=r.state is ReplicaState.PENDING,
                ready=r.state in _SERVING,
                draining_since=r.draining_since,
                in_flight=float(in_flight(r.name)) if r.state in _SERVING else 0.0,
                cached_blocks=float(r.engine.cache.pinned_blocks + r.engine.cache.free_blocks),
            )
            for r in self.live
            if r.phase is phase
        ]

    def _serving(self, replica: SimReplica) -> bool:
        return replica.engine.in_flight > 0 or (
            replica.state in _SERVING and self.placer.in_flight(replica.name) > 0
        )

    def _mark(self, replica: SimReplica, now: float) -> None:
        replica.draining_since = now
        if replica.state is ReplicaState.READY:
            replica.state = ReplicaState.DRAINING
            self.placer.set_draining(replica.name, True)

    def _unmark(self, replica: SimReplica) -> None:
        replica.draining_since = None
        if replica.state is ReplicaState.DRAINING:
            replica.state = ReplicaState.READY
            self.placer.set_draining(replica.name, False)

    def _start(self, phase: Phase, now: float) -> tuple[float, float, SimReplica]:
        engine = ReplicaEngine(
            self.profile, prefill_only=phase is Phase.PREFILL, block_tokens=self._block_tokens
        )
        state = ReplicaState.PENDING if self._pending_delay_s > 0 else ReplicaState.STARTING
        replica = SimReplica(f"{phase.value}-{self._serial}", phase, engine, created=now, state=state)
        self._serial += 1
        self.replicas[replica.name] = replica
        self.live.append(replica)
        startup = self.profile.startup
        delay = max(0.0, self._rng.gauss(startup.mean_s.value, startup.spread_s.value))
        starts = now + self._pending_delay_s
        return starts, starts + delay, replica

    def _gone(self, replica: SimReplica, now: float) -> None:
        if replica.state in _SERVING:
            self.placer.remove_endpoint(replica.name)
        replica.state = ReplicaState.GONE
        replica.gone = now
        self.live.remove(replica)
