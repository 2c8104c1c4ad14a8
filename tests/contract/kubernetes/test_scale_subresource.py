"""ScaleClient against the fake API server: Scale objects, optimistic concurrency and typed failures."""

from __future__ import annotations

import socket

import pytest
from kubernetes import client as sync_client
from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.scale import ScaleApplied, ScaleClient, ScaleConflict
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from tests.contract.kubernetes.conftest import (
    LEADER_WORKER_SETS,
    add_deployment,
    add_statefulset,
    assert_writes_valid,
    leader_worker_set,
)
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import DEPLOYMENTS, PODS

DECODE = WorkloadRef(api_version="apps/v1", kind="Deployment", name="decode", namespace="default")


async def test_reads_the_scale_of_a_deployment(kube: FakeKubeApiServer, api_client: client.ApiClient) -> None:
    created = add_deployment(kube, "decode", replicas=3)

    scale = await ScaleClient(api_client).read(DECODE)

    assert (scale.replicas, scale.observed_replicas, scale.selector) == (3, 3, "app=decode")
    assert scale.resource_version == kube.get(DEPLOYMENTS, "decode")["metadata"]["resourceVersion"]
    assert int(scale.resource_version) > int(
        created["metadata"]["resourceVersion"]
    )  # pods reported in status


async def test_set_replicas_writes_a_scale_with_the_read_version_and_pods_follow(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    scales = ScaleClient(api_client)
    base = await scales.read(DECODE)

    result = await scales.set_replicas(base, 5)

    assert isinstance(result, ScaleApplied)
    # The answer to the write predates the ReplicaSet's work, as on a real server; a re-read shows it.
    assert (result.scale.replicas, result.scale.observed_replicas) == (5, 2)
    assert (await scales.read(DECODE)).observed_replicas == 5
    assert int(result.scale.resource_version) > int(base.resource_version)
    assert len(kube.list(PODS, selector="app=decode")) == 5
    (put,) = kube.requests_to("/deployments/decode/scale$", method="PUT")
    assert put.body["metadata"]["resourceVersion"] == base.resource_version
    assert put.query["fieldManager"] == "inference-autoscaler"
    assert assert_writes_valid(kube, "/scale$") == 1


async def test_a_stale_write_gets_409_rereads_and_asks_to_decide_again(
    kube: FakeKubeApiServer, api_client: client.ApiClient, sync_api: sync_client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    scales = ScaleClient(api_client)
    base = await scales.read(DECODE)
    # Someone else (a person with kubectl scale) changes the replicas between our read and our write.
    sync_client.AppsV1Api(sync_api).patch_namespaced_deployment_scale(
        "decode", "default", {"spec": {"replicas": 7}}
    )

    result = await scales.set_replicas(base, 4)

    assert isinstance(result, ScaleConflict)
    assert result.latest.replicas == 7
    assert result.latest.resource_version != base.resource_version
    assert kube.get(DEPLOYMENTS, "decode")["spec"]["replicas"] == 7  # our stale write changed nothing
    assert isinstance(await scales.set_replicas(result.latest, 4), ScaleApplied)


async def test_statefulset_and_custom_resource_scale(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_statefulset(kube, "prefill", replicas=1, parallel=True)
    kube.create(LEADER_WORKER_SETS, leader_worker_set("wide", replicas=2))
    scales = ScaleClient(api_client)
    prefill = WorkloadRef(api_version="apps/v1", kind="StatefulSet", name="prefill", namespace="default")
    wide = WorkloadRef(
        api_version="leaderworkerset.x-k8s.io/v1",
        kind="LeaderWorkerSet",
        name="wide",
        namespace="default",
        plural="leaderworkersets",
    )

    applied = [await scales.set_replicas(await scales.read(ref), 3) for ref in (prefill, wide)]

    assert [a.scale.replicas for a in applied if isinstance(a, ScaleApplied)] == [3, 3]
    assert (await scales.read(wide)).selector == "leaderworkerset.sigs.k8s.io/name=wide"
    assert kube.get(LEADER_WORKER_SETS, "wide")["spec"]["replicas"] == 3
    assert assert_writes_valid(kube, "/scale$") == 2


def test_a_custom_kind_needs_its_plural() -> None:
    with pytest.raises(ValueError, match="plural"):
        WorkloadRef(
            api_version="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet", name="w", namespace="d"
        )


async def test_server_errors_surface_as_unavailable(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    kube.faults.inject("/deployments/decode/scale$", status=500)
    scales = ScaleClient(api_client)

    with pytest.raises(errors.Unavailable) as raised:
        await scales.read(DECODE)

    assert (raised.value.status, raised.value.reason) == (500, "InternalError")
    assert (await scales.read(DECODE)).replicas == 2  # the fault was for one request only


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, errors.Unavailable),
        (503, errors.Unavailable),
        (403, errors.Rejected),
        (422, errors.Rejected),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (410, errors.Expired),
    ],
)
async def test_each_status_maps_to_the_error_that_says_what_to_do(
    kube: FakeKubeApiServer, api_client: client.ApiClient, status: int, error: type[errors.KubernetesError]
) -> None:
    add_deployment(kube, "decode", replicas=2)
    kube.faults.inject("/deployments/decode/scale$", status=status)

    with pytest.raises(error) as raised:
        await ScaleClient(api_client).read(DECODE)

    assert raised.value.status == status
    assert str(raised.value).startswith(f"read scale of apps/v1 Deployment default/decode: {status} ")


async def test_an_unreachable_api_server_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}")) as api:
        with pytest.raises(errors.Unavailable, match="ConnectionError"):
            await ScaleClient(api).read(DECODE)


async def test_a_slow_server_surfaces_as_request_timeout(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    kube.faults.inject("/deployments/decode/scale$", status=None, delay_s=5.0)

    with pytest.raises(errors.RequestTimeout):
        await ScaleClient(api_client, timeout_s=0.2).read(DECODE)


async def test_a_conflict_during_the_reread_is_not_hidden(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    scales = ScaleClient(api_client)
    base = await scales.read(DECODE)
    kube.faults.inject("/deployments/decode/scale$", status=409, method="PUT")
    kube.faults.inject("/deployments/decode/scale$", status=503, method="GET")

    with pytest.raises(errors.Unavailable):
        await scales.set_replicas(base, 3)


async def test_a_deleted_workload_is_not_found(kube: FakeKubeApiServer, api_client: client.ApiClient) -> None:
    add_deployment(kube, "decode", replicas=2)
    scales = ScaleClient(api_client)
    base = await scales.read(DECODE)
    kube.delete(DEPLOYMENTS, "decode")

    with pytest.raises(errors.NotFound, match=r'deployments\.apps "decode" not found'):
        await scales.set_replicas(base, 3)
    assert kube.list(PODS) == []  # garbage-collected with their owner


async def test_negative_replicas_are_refused_before_any_request(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    scales = ScaleClient(api_client)
    base = await scales.read(DECODE)
    kube.requests.clear()

    with pytest.raises(ValueError, match="negative"):
        await scales.set_replicas(base, -1)
    assert kube.requests == []
