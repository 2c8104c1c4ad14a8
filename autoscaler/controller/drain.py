"""Pods and the router's load as the actuation model's replica view (``autoscaler.policy.actuation``).

The model decides which replicas a scale-down removes and when the count may drop; this module says what it
sees of a pod: Pending, Ready and a deletionTimestamp from Kubernetes, the draining mark's time from the
pod's annotation, requests in flight and cached blocks from the router. Without the router's metrics
(``load`` is None) a marked pod waits out the drain time-out; a pod the router does not know serves nothing.
With the chosen pods at ``VICTIM_DELETION_COST`` the ReplicaSet deletes exactly them when the count drops.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.adapters.kubernetes.pods import PodState
from autoscaler.adapters.router_metrics import RouterLoad
from autoscaler.policy import actuation

VICTIM_DELETION_COST = -1000  # below the default 0 of every other pod
ORDERED_KINDS = frozenset({"StatefulSet", "LeaderWorkerSet"})  # remove their highest ordinals, always


def view(pod: PodState, load: RouterLoad | None) -> actuation.ReplicaView:
    endpoint = load.get(pod.name) if load is not None else None
    in_flight = None if load is None else (endpoint.in_flight if endpoint is not None else 0.0)
    return actuation.ReplicaView(
        name=pod.name,
        created=pod.created or 0.0,
        pending=pod.phase == "Pending",
        ready=pod.ready,
        deleting=pod.deleting,
        draining_since=pod.draining_since,
        in_flight=None if in_flight is None else max(0.0, in_flight),
        cached_blocks=max(0.0, endpoint.cached_blocks) if endpoint is not None else 0.0,
    )


def views(pods: Sequence[PodState], load: RouterLoad | None) -> tuple[actuation.ReplicaView, ...]:
    return tuple(view(pod, load) for pod in pods)


def plan(pods: Sequence[PodState], *, desired: int, kind: str, load: RouterLoad | None) -> actuation.Removal:
    """The model's draining marks for a scale-down of these pods to ``desired``."""
    return actuation.choose(views(pods, load), desired=desired, ordered=kind in ORDERED_KINDS)


def drained(pod: PodState, *, load: RouterLoad | None, now: float, timeout_s: float) -> bool:
    """Whether the model lets a marked pod go now."""
    return actuation.drained(view(pod, load), now=now, timeout_s=timeout_s)
