"""The controller and the simulated cluster move a replica set alike: given the same replicas, the same
router load and the same decisions, step by step, both mark the same replicas draining, ask for the same
count and remove the same replicas (victim order, a drain holding the count, a smaller scale-down lifting a
mark, not-ready replicas first, a mark lifted when demand returns, the drain time-out)."""

from __future__ import annotations

import dataclasses
import random

from autoscaler.adapters.kubernetes.pods import PodState
from autoscaler.adapters.kubernetes.scale import ScaleApplied, ScaleState
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from autoscaler.adapters.router_metrics import EndpointLoad
from autoscaler.controller.actuation import Actuator, Scaled
from autoscaler.core.phases import Phase
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim.cluster import Cluster

A = Phase.AGGREGATED
TIMEOUT_S = 60.0
# (time, desired replicas, requests in flight per replica index; absent: none)
STEPS: tuple[tuple[float, int, dict[int, int]], ...] = (
    (30.0, 2, {0: 3, 1: 1, 2: 2}),  # victims 3 (idle) and 1 (serving): marked, the count holds at 4
    (60.0, 3, {0: 3, 1: 1, 2: 2}),  # a smaller scale-down: one mark lifted (same age: by name, 3)
    (90.0, 3, {0: 3, 2: 2}),  # 1 has drained: the count drops to 3 and 1 goes
    (120.0, 5, {0: 3, 2: 2}),  # scale-up: two new replicas, starting
    (150.0, 3, {0: 2, 2: 2, 3: 1}),  # the starting ones go first, at once
    (180.0, 2, {0: 5, 2: 4, 3: 3}),  # 3 serves least: marked, the count holds
    (210.0, 3, {0: 5, 2: 4, 3: 3}),  # demand is back: the mark is lifted, 3 serves again
    (240.0, 2, {0: 5, 2: 4, 3: 3}),  # marked again, from now
    (310.0, 2, {0: 5, 2: 4, 3: 3}),  # still serving after the 60 s bound: the count drops anyway
)


def _name(i: int) -> str:
    return f"{A.value}-{i}"


def _pod(i: int, *, ready: bool) -> PodState:
    return PodState(
        name=_name(i),
        namespace="default",
        phase="Running",
        ready=ready,
        ip=None,
        deleting=False,
        draining_since=None,
        deletion_cost=None,
        created=0.0,
        resource_version="1",
    )


class _Pods:
    """The pods and their draining marks, as the API server would keep them."""

    def __init__(self) -> None:
        self.pods = {_name(i): _pod(i, ready=True) for i in range(4)}

    async def mark_draining(self, namespace: str, name: str, *, since: float, deletion_cost: int) -> PodState:
        pod = self.pods[name] = dataclasses.replace(
            self.pods[name], draining_since=since, deletion_cost=deletion_cost
        )
        return pod

    async def clear_draining(self, namespace: str, name: str) -> PodState:
        pod = self.pods[name] = dataclasses.replace(self.pods[name], draining_since=None, deletion_cost=None)
        return pod


class _Scales:
    async def set_replicas(self, base: ScaleState, replicas: int) -> ScaleApplied:
        return ScaleApplied(scale=dataclasses.replace(base, replicas=replicas))


class _Load(LeastLoadedPlacer):
    """The least-loaded placer, with the router's requests in flight set by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.load: dict[str, int] = {}

    def in_flight(self, name: str) -> int:
        return self.load.get(name, 0)


async def _controller_steps() -> list[tuple[int, list[str], list[str]]]:
    pods, scales = _Pods(), _Scales()
    actuator = Actuator(scales, pods)  # type: ignore[arg-type]
    target = WorkloadRef(api_version="apps/v1", kind="Deployment", name="llm", namespace="default")
    scale = ScaleState(target=target, replicas=4, observed_replicas=4, selector="", resource_version="1")
    serial = 4
    seen = []
    for now, desired, in_flight in STEPS:
        load = {
            name: EndpointLoad(
                in_flight=float(in_flight.get(int(name.rsplit("-", 1)[1]), 0)), cached_blocks=0.0
            )
            for name, pod in pods.pods.items()
            if pod.ready
        }
        outcome = await actuator.apply(
            scale, tuple(pods.pods.values()), desired=desired, load=load, now=now, drain_timeout_s=TIMEOUT_S
        )
        if isinstance(outcome, Scaled):
            scale = dataclasses.replace(scale, replicas=outcome.after)
            for name in outcome.removed:  # the ReplicaSet deletes exactly the marked pods
                del pods.pods[name]
            while len(pods.pods) < scale.replicas:  # and starts new ones, not ready yet
                pods.pods[_name(serial)] = _pod(serial, ready=False)
                serial += 1
        marked = sorted(name for name, pod in pods.pods.items() if pod.draining)
        seen.append((scale.replicas, marked, sorted(pods.pods)))
    return seen


def _simulated_steps(profile: Profile) -> list[tuple[int, list[str], list[str]]]:
    placer = _Load()
    cluster = Cluster(
        profile, phases=(A,), placer=placer, rng=random.Random(0), block_tokens=16, drain_timeout_s=TIMEOUT_S
    )
    for _, _, replica in cluster.scale_to(A, 4, now=0.0).started:
        cluster.mark_ready(replica, 0.0)
    seen = []
    for now, desired, in_flight in STEPS:
        placer.load = {_name(i): n for i, n in in_flight.items()}
        cluster.scale_to(A, desired, now=now)
        live = cluster.live
        marked = sorted(r.name for r in live if r.draining_since is not None)
        seen.append((cluster.asked(A), marked, sorted(r.name for r in live)))
    return seen


async def test_the_simulated_cluster_scales_as_the_controller_does(profile: Profile) -> None:
    controller = await _controller_steps()
    simulated = _simulated_steps(profile)
    for step, (live, sim) in enumerate(zip(controller, simulated, strict=True)):
        assert live == sim, f"step {step} at {STEPS[step][0]} s: controller {live}, simulator {sim}"
    assert [count for count, _, _ in simulated] == [4, 4, 3, 5, 3, 3, 3, 3, 2]
    assert [marked for _, marked, _ in simulated][5:8] == [[_name(3)], [], [_name(3)]]
