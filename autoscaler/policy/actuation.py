"""How a replica set moves to a decided count: the one actuation model, for the controller and the simulator.

A pure function of a neutral view of the replicas (what Kubernetes and the router say about each one) and
the time, given as an argument. The controller (``autoscaler.controller.actuation``) reads pods and the
router's load into ``ReplicaView``s and writes what ``actuate`` says; the simulated cluster
(``autoscaler.sim.cluster``) does the same with its replicas, so a what-if run scales down exactly as the
cluster would.

- **Scale-up, or holding the count**, lifts every draining mark first (demand came back: the marked replicas
  take traffic again at once, warm, instead of new ones starting cold), then raises the count.
- **Scale-down** runs across control steps, never waiting inside one. It marks the victims draining (the
  router stops sending them new requests) and keeps the count where it is, so every replica keeps being paid
  for and counted as current until it is gone. Once every victim has drained (serves nothing, or its drain
  has lasted the time-out, a bound so that a stuck request cannot block scale-down forever), the count drops
  and exactly the victims go. Marks already placed are kept (their drain is under way); a smaller scale-down
  than the one under way lifts the most recently placed ones.
- **Victims**, cheapest loss first: not scheduled yet (Pending), then not ready, then the fewest requests in
  flight, then the least cached prefix state, then the newest. That is the ReplicaSet controller's own order
  (unscheduled, pending, not ready, then the lowest ``pod-deletion-cost``), so with the victims at the lowest
  cost it deletes exactly them. Ordered sets (StatefulSets, LeaderWorkerSets) always lose their highest
  ordinals, whatever the cost: there the victims are those ordinals, and marks elsewhere are lifted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from autoscaler.core.observation import ReplicaCounts

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT_S",
    "Actuation",
    "Removal",
    "ReplicaView",
    "actuate",
    "choose",
    "counts",
    "drained",
]

DEFAULT_DRAIN_TIMEOUT_S = 120.0  # the custom resource's default ``behavior.drainTimeoutSeconds``
_ORDINAL = re.compile(r"-(\d+)$")


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaView:
    """One replica of the set as the actuator sees it, whatever runs it (a pod, a simulated replica)."""

    name: str
    created: float  # when it was asked for (seconds, any epoch shared by ``now``)
    pending: bool = False  # not scheduled or its containers not started (Kubernetes phase Pending)
    ready: bool = True  # takes requests (the Ready condition)
    deleting: bool = False  # already on its way out whatever the count says (a deletionTimestamp)
    draining_since: float | None = None  # when its draining mark was placed; None when not marked
    in_flight: float | None = None  # requests the router has on it; None when the router cannot say
    cached_blocks: float = 0.0  # prefix blocks it holds (router index; engine cache in the simulator)

    def __post_init__(self) -> None:
        if self.in_flight is not None and not self.in_flight >= 0:
            raise ValueError(f"{self.name}: in_flight must be >= 0, got {self.in_flight}")
        if not self.cached_blocks >= 0:
            raise ValueError(f"{self.name}: cached_blocks must be >= 0, got {self.cached_blocks}")

    @property
    def draining(self) -> bool:
        return self.draining_since is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Removal:
    """The draining marks a scale-down to some count needs."""

    mark: tuple[ReplicaView, ...]  # newly chosen: mark draining now
    unmark: tuple[ReplicaView, ...]  # no longer to be removed: take traffic again
    victims: tuple[ReplicaView, ...]  # every replica the count's drop will remove, marked or to be marked


@dataclasses.dataclass(frozen=True, slots=True)
class Actuation:
    """What to do now: the marks to change, and the count to ask for (held while a drain is under way)."""

    replicas: int  # the count to ask for now; the current one while victims still serve
    mark: tuple[str, ...] = ()
    unmark: tuple[str, ...] = ()
    victims: tuple[str, ...] = ()  # sorted; removed now when ``replicas`` dropped, else still draining
    waiting: tuple[str, ...] = ()  # victims still serving: the count holds until they have drained


def actuate(
    replicas: Sequence[ReplicaView],
    *,
    current: int,
    desired: int,
    ordered: bool,
    now: float,
    drain_timeout_s: float,
) -> Actuation:
    """One control step's actuation from ``current`` (the asked-for count) toward ``desired``."""
    if current < 0 or desired < 0:
        raise ValueError(f"replica counts cannot be negative: current={current}, desired={desired}")
    if desired >= current:
        lifted = tuple(r.name for r in replicas if r.draining and not r.deleting)
        return Actuation(replicas=desired, unmark=lifted)
    removal = choose(replicas, desired=desired, ordered=ordered)
    waiting = tuple(
        victim.name
        for victim in removal.victims
        if not drained(
            victim if victim.draining else dataclasses.replace(victim, draining_since=now),
            now=now,
            timeout_s=drain_timeout_s,
        )
    )
    return Actuation(
        replicas=current if waiting else desired,
        mark=tuple(r.name for r in removal.mark),
        unmark=tuple(r.name for r in removal.unmark),
        victims=tuple(sorted(r.name for r in removal.victims)),
        waiting=waiting,
    )


def choose(replicas: Sequence[ReplicaView], *, desired: int, ordered: bool) -> Removal:
    """Mark as many replicas as leave when the count drops to ``desired``; keep marks already placed
    and lift the surplus ones, most recently marked first."""
    active = [r for r in replicas if not r.deleting]
    needed = max(0, len(active) - desired)
    marked = sorted((r for r in active if r.draining), key=lambda r: (r.draining_since or 0.0, r.name))
    if ordered:
        victims = sorted(active, key=_ordinal, reverse=True)[:needed]
        chosen = {r.name for r in victims}
        return Removal(
            mark=tuple(r for r in victims if not r.draining),
            unmark=tuple(r for r in marked if r.name not in chosen),
            victims=tuple(victims),
        )
    keep = marked[:needed]
    fresh = sorted((r for r in active if not r.draining), key=_cost)[: needed - len(keep)]
    return Removal(mark=tuple(fresh), unmark=tuple(marked[needed:]), victims=(*keep, *fresh))


def drained(replica: ReplicaView, *, now: float, timeout_s: float) -> bool:
    """Whether a marked replica may go: it serves nothing (not ready, or the router has no request on it)
    or its drain has lasted ``timeout_s``. Unknown load waits for the bound."""
    if not replica.ready:
        return True
    since = now if replica.draining_since is None else replica.draining_since
    if now - since >= timeout_s:
        return True
    return replica.in_flight is not None and replica.in_flight <= 0


def counts(replicas: Sequence[ReplicaView], *, current: int) -> ReplicaCounts:
    """What the policy is told: ``current`` is the asked-for count (draining victims included until the
    count drops), ready the replicas taking or finishing requests, starting the rest of ``current``."""
    ready = min(current, sum(1 for r in replicas if r.ready and not r.deleting))
    return ReplicaCounts(current=current, ready=ready, starting=current - ready)


def _cost(replica: ReplicaView) -> tuple[int, int, float, float, float, str]:
    return (
        0 if replica.pending else 1,
        1 if replica.ready else 0,
        replica.in_flight or 0.0,
        replica.cached_blocks,
        -replica.created,
        replica.name,
    )


def _ordinal(replica: ReplicaView) -> int:
    match = _ORDINAL.search(replica.name)
    return int(match.group(1)) if match else -1
