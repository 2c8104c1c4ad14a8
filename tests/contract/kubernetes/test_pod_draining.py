"""PodClient against the fake: pod states, draining mark, scale-down removing exactly the marked pods."""

from __future__ import annotations

import contextlib

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.pods import DELETION_COST_ANNOTATION, DRAINING_ANNOTATION, PodClient
from autoscaler.adapters.kubernetes.scale import ScaleApplied, ScaleClient
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from tests.contract.kubernetes.conftest import add_deployment, add_statefulset, assert_valid
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import DEPLOYMENTS, PODS

DECODE = WorkloadRef(api_version="apps/v1", kind="Deployment", name="decode", namespace="default")
NOW = 1_780_000_000.0


async def test_lists_the_pods_of_a_scale_selector_with_readiness(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    add_deployment(kube, "prefill", replicas=1)
    kube.workloads.start_pending = True
    scale = await ScaleClient(api_client).set_replicas(await ScaleClient(api_client).read(DECODE), 3)
    assert isinstance(scale, ScaleApplied)

    pods = (await PodClient(api_client).list("default", scale.scale.selector)).pods

    assert len(pods) == 3  # not the prefill pod
    assert sorted((p.phase, p.ready) for p in pods) == [
        ("Pending", False),
        ("Running", True),
        ("Running", True),
    ]
    assert all(p.ip for p in pods if p.ready) and not any(p.draining or p.deleting for p in pods)
    assert (scale.scale.replicas, kube.get(DEPLOYMENTS, "decode")["status"]["readyReplicas"]) == (3, 2)


async def test_a_stuck_pending_pod_becomes_ready_when_scheduled(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.workloads.start_pending = True
    add_deployment(kube, "decode", replicas=1)
    (pending,) = (await PodClient(api_client).list("default", "app=decode")).pods

    kube.workloads.set_ready("default", pending.name)

    (running,) = (await PodClient(api_client).list("default", "app=decode")).pods
    assert (pending.phase, running.phase, running.ready) == ("Pending", "Running", True)


async def test_mark_draining_sets_both_annotations_in_one_valid_patch(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    pods = PodClient(api_client)
    victim = (await pods.list("default", "app=decode")).pods[0]

    marked = await pods.mark_draining("default", victim.name, since=NOW, deletion_cost=-1000)

    assert (marked.draining, marked.draining_since, marked.deletion_cost) == (True, NOW, -1000)
    (patch,) = kube.requests_to(f"/pods/{victim.name}$", method="PATCH")
    assert patch.content_type == "application/merge-patch+json"
    assert set(patch.body["metadata"]["annotations"]) == {DRAINING_ANNOTATION, DELETION_COST_ANNOTATION}
    assert_valid(kube.get(PODS, victim.name))

    cleared = await pods.clear_draining("default", victim.name)
    assert (cleared.draining, cleared.deletion_cost) == (False, None)


async def test_scale_down_removes_exactly_the_drained_pods(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=4)
    pods, scales = PodClient(api_client), ScaleClient(api_client)
    names = [p.name for p in (await pods.list("default", "app=decode")).pods]
    victims = {names[1], names[2]}  # not the newest: the ReplicaSet's own default would pick otherwise
    for name in names:
        await pods.annotate("default", name, {DELETION_COST_ANNOTATION: "100"})
    for name in victims:
        await pods.mark_draining("default", name, since=NOW, deletion_cost=-100)

    await scales.set_replicas(await scales.read(DECODE), 2)

    remaining = {p.name for p in (await pods.list("default", "app=decode")).pods}
    assert remaining == set(names) - victims


async def test_a_pod_watch_shows_the_drain_then_the_removal(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    pods, scales = PodClient(api_client), ScaleClient(api_client)
    listed = await pods.list("default", "app=decode")
    victim = listed.pods[0].name
    await pods.mark_draining("default", victim, since=NOW, deletion_cost=-100)
    await scales.set_replicas(await scales.read(DECODE), 1)

    seen = []
    async with contextlib.aclosing(
        pods.watch("default", "app=decode", resource_version=listed.resource_version, timeout_s=5)
    ) as events:
        async for event in events:
            seen.append((event.type, event.pod.name, event.pod.draining))
            if len(seen) == 2:
                break

    assert seen == [("MODIFIED", victim, True), ("DELETED", victim, True)]


async def test_a_removed_pod_stays_terminating_through_its_grace_period(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.workloads.termination_grace = True
    add_deployment(kube, "decode", replicas=2)
    pods, scales = PodClient(api_client), ScaleClient(api_client)
    victim = (await pods.list("default", "app=decode")).pods[0].name
    await pods.mark_draining("default", victim, since=NOW, deletion_cost=-100)

    await scales.set_replicas(await scales.read(DECODE), 1)

    states = {p.name: p for p in (await pods.list("default", "app=decode")).pods}
    assert (states[victim].deleting, states[victim].ready, states[victim].draining) == (True, False, True)
    assert sum(not p.deleting for p in states.values()) == 1
    assert (await scales.read(DECODE)).observed_replicas == 1  # a terminating pod is not a replica
    kube.workloads.finish_termination("default", victim)
    assert victim not in {p.name for p in (await pods.list("default", "app=decode")).pods}


async def test_a_statefulset_recreates_an_ordinal_only_once_its_old_pod_is_gone(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.workloads.termination_grace = True
    add_statefulset(kube, "prefill", replicas=2, parallel=True)
    pods, scales = PodClient(api_client), ScaleClient(api_client)
    target = WorkloadRef(api_version="apps/v1", kind="StatefulSet", name="prefill", namespace="default")
    await scales.set_replicas(await scales.read(target), 1)

    await scales.set_replicas(await scales.read(target), 2)

    (terminating,) = [p for p in (await pods.list("default", "app=prefill")).pods if p.deleting]
    assert terminating.name == "prefill-1"
    kube.workloads.finish_termination("default", "prefill-1")
    listed = (await pods.list("default", "app=prefill")).pods
    assert [(p.name, p.deleting, p.ready) for p in listed] == [
        ("prefill-0", False, True),
        ("prefill-1", False, True),
    ]


async def test_statefulsets_remove_the_highest_ordinal_whatever_the_cost(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_statefulset(kube, "prefill", replicas=3, parallel=True)
    pods, scales = PodClient(api_client), ScaleClient(api_client)
    await pods.mark_draining("default", "prefill-0", since=NOW, deletion_cost=-100)
    target = WorkloadRef(api_version="apps/v1", kind="StatefulSet", name="prefill", namespace="default")

    await scales.set_replicas(await scales.read(target), 2)

    assert [p.name for p in (await pods.list("default", "app=prefill")).pods] == ["prefill-0", "prefill-1"]


async def test_an_ordered_statefulset_waits_for_each_pod_to_be_ready(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.workloads.start_pending = True
    add_statefulset(kube, "prefill", replicas=3)
    pods = PodClient(api_client)
    assert [p.name for p in (await pods.list("default", "app=prefill")).pods] == ["prefill-0"]

    kube.workloads.set_ready("default", "prefill-0")

    assert [p.name for p in (await pods.list("default", "app=prefill")).pods] == ["prefill-0", "prefill-1"]


async def test_annotating_a_deleted_pod_is_not_found(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=1)

    try:
        await PodClient(api_client).mark_draining("default", "decode-gone", since=NOW, deletion_cost=0)
    except errors.NotFound as error:
        assert error.status == 404
    else:
        raise AssertionError("expected NotFound")
