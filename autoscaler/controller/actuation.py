"""Move one phase's replica count to the decided one, through the scale subresource and the router.

What to do is the actuation model's (``autoscaler.policy.actuation``, shared with the simulator): lift the
draining marks when the count holds or rises, else mark the victims draining (the router stops sending them
requests; their ``pod-deletion-cost`` makes them the ReplicaSet's choice) and lower the replica count only
once every one of them has drained or the drain time-out has passed. Scale-down so runs across cycles and no
cycle ever waits. All state lives in the pods' annotations, so a restarted or newly elected controller picks a
drain up where it stood.

A write carries the resourceVersion the decision was based on; a 409 comes back as ``Conflicted`` with the
latest state, for the cycle to decide again.
"""

from __future__ import annotations

import dataclasses

from autoscaler.adapters.kubernetes.pods import PodClient, PodState
from autoscaler.adapters.kubernetes.scale import ScaleClient, ScaleConflict, ScaleState
from autoscaler.adapters.router_metrics import RouterLoad
from autoscaler.controller import drain
from autoscaler.policy import actuation


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
        step = actuation.actuate(
            drain.views(pods, load),
            current=scale.replicas,
            desired=desired,
            ordered=scale.target.kind in drain.ORDERED_KINDS,
            now=now,
            drain_timeout_s=drain_timeout_s,
        )
        by_name = {pod.name: pod for pod in pods}
        for name in step.unmark:
            await self._pods.clear_draining(by_name[name].namespace, name)
        for name in step.mark:
            await self._pods.mark_draining(
                by_name[name].namespace, name, since=now, deletion_cost=drain.VICTIM_DELETION_COST
            )
        if step.waiting:
            return Draining(victims=step.victims, waiting=step.waiting, marked=step.mark)
        if step.replicas == scale.replicas:
            return Unchanged()
        outcome = await self._write(scale, step.replicas)
        if isinstance(outcome, Scaled):
            return dataclasses.replace(outcome, removed=step.victims)
        return outcome

    async def _write(self, scale: ScaleState, desired: int) -> Scaled | Conflicted:
        written = await self._scales.set_replicas(scale, desired)
        if isinstance(written, ScaleConflict):
            return Conflicted(latest=written.latest)
        return Scaled(before=scale.replicas, after=desired)
