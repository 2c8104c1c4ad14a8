"""Move one phase's replica count to the decided one, through the scale subresource and the router.

Scale-up is one optimistic write. Scale-down runs across cycles, so no cycle ever waits: mark the replicas
to remove as draining (the router stops sending them requests; their ``pod-deletion-cost`` makes them the
ReplicaSet's choice), and once every one of them has drained, or the drain bound has passed, lower the
replica count. A decision that no longer asks for the scale-down lifts the marks. All state lives in the
pods' annotations, so a restarted or newly elected controller picks a drain up where it stood.

A write carries the resourceVersion the decision was based on; a 409 comes back as ``Conflicted`` with the
latest state, for the cycle to decide again.
"""

from __future__ import annotations

import dataclasses

from autoscaler.adapters.kubernetes.pods import PodClient, PodState
from autoscaler.adapters.kubernetes.scale import ScaleClient, ScaleConflict, ScaleState
from autoscaler.controller import drain
from autoscaler.controller.router_load import RouterLoad


@dataclasses.dataclass(frozen=True, slots=True)
class Unchanged:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Scaled:
    before: int
    after: int
    removed: tuple[str, ...] = ()  # the pods chosen for removal, on a scale-down


@dataclasses.dataclass(frozen=True, slots=True)
class Draining:
    victims: tuple[str, ...]  # every pod marked for removal
    waiting: tuple[str, ...]  # those still serving requests
    marked: tuple[str, ...]  # those newly marked this cycle


@dataclasses.dataclass(frozen=True, slots=True)
class Conflicted:
    latest: ScaleState


Outcome = Unchanged | Scaled | Draining | Conflicted


class Actuator:
    def __init__(self, scales: ScaleClient, pods: PodClient) -> None:
        self._scales = scales
        self._pods = pods

    async def apply(
        self,
        scale: ScaleState,
        pods: tuple[PodState, ...],
        *,
        desired: int,
        load: RouterLoad | None,
        now: float,
        drain_timeout_s: float,
    ) -> Outcome:
        current = scale.replicas
        if desired >= current:
            for pod in pods:
                if pod.draining and not pod.deleting:
                    await self._pods.clear_draining(pod.namespace, pod.name)
            return await self._write(scale, desired) if desired > current else Unchanged()
        step = drain.plan(pods, desired=desired, kind=scale.target.kind, load=load)
        for pod in step.unmark:
            await self._pods.clear_draining(pod.namespace, pod.name)
        marked = []
        for pod in step.mark:
            marked.append(
                await self._pods.mark_draining(
                    pod.namespace, pod.name, since=now, deletion_cost=drain.VICTIM_DELETION_COST
                )
            )
        victims = [*(v for v in step.victims if v.draining), *marked]
        waiting = tuple(
            v.name for v in victims if not drain.drained(v, load=load, now=now, timeout_s=drain_timeout_s)
        )
        if waiting:
            names = tuple(sorted(v.name for v in victims))
            return Draining(victims=names, waiting=waiting, marked=tuple(p.name for p in marked))
        outcome = await self._write(scale, desired)
        if isinstance(outcome, Scaled):
            return dataclasses.replace(outcome, removed=tuple(sorted(v.name for v in victims)))
        return outcome

    async def _write(self, scale: ScaleState, desired: int) -> Scaled | Conflicted:
        written = await self._scales.set_replicas(scale, desired)
        if isinstance(written, ScaleConflict):
            return Conflicted(latest=written.latest)
        return Scaled(before=scale.replicas, after=desired)
