"""Which replicas a scale-down removes, and when they have drained: pure functions of pods and router load.

Removal order, cheapest loss first: replicas that serve nothing yet (Pending, not ready) need no drain and
go first; then those with the fewest requests in flight, then the least cached prefix state, then the
newest. That matches the ReplicaSet controller's own order (unscheduled, pending, not ready, then lowest
``pod-deletion-cost``), so with the chosen pods at the lowest cost the ReplicaSet deletes exactly them.
StatefulSets and LeaderWorkerSets always remove their highest ordinals, whatever the cost: there the
victims are those ordinals, and draining them first is still what keeps their requests from failing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from autoscaler.adapters.kubernetes.pods import PodState
from autoscaler.controller.router_load import RouterLoad

VICTIM_DELETION_COST = -1000  # below the default 0 of every other pod
ORDERED_KINDS = frozenset({"StatefulSet", "LeaderWorkerSet"})
_ORDINAL = re.compile(r"-(\d+)$")


@dataclasses.dataclass(frozen=True, slots=True)
class DrainPlan:
    """What to do with the draining marks before the replica count can drop to the desired one."""

    mark: tuple[PodState, ...]  # newly chosen: mark draining now
    unmark: tuple[PodState, ...]  # no longer to be removed (demand came back): take traffic again
    victims: tuple[PodState, ...]  # every pod the scale-down will remove, marked or to be marked


def plan(pods: Sequence[PodState], *, desired: int, kind: str, load: RouterLoad | None) -> DrainPlan:
    """Mark as many pods as the ReplicaSet will delete when the count drops to ``desired``; keep marks
    already placed (their drain is under way) and lift the surplus ones, most recently marked first."""
    active = [pod for pod in pods if not pod.deleting]
    needed = max(0, len(active) - desired)
    marked = sorted((p for p in active if p.draining), key=lambda p: (p.draining_since or 0.0, p.name))
    if kind in ORDERED_KINDS:  # only the highest ordinals can go: marks elsewhere are lifted
        victims = sorted(active, key=_ordinal, reverse=True)[:needed]
        chosen = {p.name for p in victims}
        return DrainPlan(
            mark=tuple(p for p in victims if not p.draining),
            unmark=tuple(p for p in marked if p.name not in chosen),
            victims=tuple(victims),
        )
    keep = marked[:needed]
    fresh = sorted((p for p in active if not p.draining), key=lambda p: _cost(p, load))
    new = fresh[: needed - len(keep)]
    return DrainPlan(mark=tuple(new), unmark=tuple(marked[needed:]), victims=(*keep, *new))


def drained(pod: PodState, *, load: RouterLoad | None, now: float, timeout_s: float) -> bool:
    """Whether a marked pod may go: it serves nothing (not ready, or the router has no request on it) or
    its drain has lasted ``timeout_s`` (a bound, so a stuck request cannot block scale-down forever)."""
    if not pod.ready:
        return True
    since = now if pod.draining_since is None else pod.draining_since
    if now - since >= timeout_s:
        return True
    if load is None:
        return False
    endpoint = load.get(pod.name)
    return endpoint is None or endpoint.in_flight <= 0


def _cost(pod: PodState, load: RouterLoad | None) -> tuple[int, int, float, float, float]:
    endpoint = load.get(pod.name) if load is not None else None
    return (
        0 if pod.phase == "Pending" else 1,
        1 if pod.ready else 0,
        endpoint.in_flight if endpoint is not None else 0.0,
        endpoint.cached_blocks if endpoint is not None else 0.0,
        -(pod.created or 0.0),
    )


def _ordinal(pod: PodState) -> int:
    match = _ORDINAL.search(pod.name)
    return int(match.group(1)) if match else -1
