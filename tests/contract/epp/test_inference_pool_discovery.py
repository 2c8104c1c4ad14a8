"""InferencePool discovery against the fake API server (real HTTP, the official client): the pool's ready
pods on its target ports become the picker's endpoints, follow readiness, the controller's draining mark
and deletion, and a change of the pool's ports; a deleted pool leaves no endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as sync_client

from tests.contract.epp.conftest import PickerFactory, Routed, completion_body, until
from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.fakes.kube_resources import PODS, custom_resource

INFERENCE_POOLS = custom_resource(
    group="inference.networking.k8s.io", version="v1", plural="inferencepools", kind="InferencePool"
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def kube() -> Iterator[FakeKubeApiServer]:
    yield from running_server(custom_types=[INFERENCE_POOLS])


def _pool(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "llama"},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": port}],
            "endpointPickerRef": {"name": "llama-epp", "portNumber": 9002},
        },
    }


def _pod(name: str, ip: str, *, ready: bool, app: str = "vllm") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app, "llm-d.ai/role": "decode"}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


async def test_pool_members_follow_pods_drains_ports_and_the_pool(
    kube: FakeKubeApiServer, picker_for: PickerFactory
) -> None:
    kube.create(INFERENCE_POOLS, _pool(8000))
    kube.create(PODS, _pod("vllm-0", "127.0.0.2", ready=True))
    kube.create(PODS, _pod("vllm-1", "127.0.0.3", ready=False))
    kube.create(PODS, _pod("other", "127.0.0.4", ready=True, app="other"))
    discovery = {"inference_pool": {"name": "llama", "api_server": kube.url}}
    async with picker_for(discovery) as running:
        fleet = running.picker.fleet
        assert running.addresses() == ["127.0.0.2:8000"]
        assert running.picker.router.endpoint("vllm-0").phase.value == "decode"

        await asyncio.to_thread(
            _patch_pod, kube.url, "vllm-1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        )
        await until(lambda: sorted(fleet.ready()) == ["vllm-0", "vllm-1"])

        await asyncio.to_thread(
            _patch_pod,
            kube.url,
            "vllm-0",
            {"metadata": {"annotations": {"inference-autoscaler.io/draining-since": "2026-12-07T10:00:00Z"}}},
        )
        await until(lambda: fleet.ready() == ["vllm-1"])
        async with running.stream() as envoy:
            routed = await envoy.request(completion_body())
            assert isinstance(routed, Routed) and routed.header == "127.0.0.3:8000"  # never the draining one
            await envoy.response()
            await envoy.end()

        kube.delete(PODS, "vllm-0")
        await until(lambda: list(running.picker.router.endpoints()) == ["vllm-1"])

        await asyncio.to_thread(_patch_pool, kube.url, {"spec": {"targetPorts": [{"number": 8200}]}})
        await until(lambda: running.addresses() == ["127.0.0.3:8200"])

        kube.delete(INFERENCE_POOLS, "llama")
        await until(lambda: not running.picker.router.endpoints())
        async with running.stream() as envoy:
            refused = await envoy.request(completion_body())
            assert not isinstance(refused, Routed) and refused.status.code == 503


def _patch_pod(api_server: str, name: str, patch: dict[str, Any]) -> None:
    with sync_client.ApiClient(sync_client.Configuration(host=api_server)) as api:
        core = sync_client.CoreV1Api(api)
        if "status" in patch:
            core.patch_namespaced_pod_status(name, "default", patch)
        else:
            core.patch_namespaced_pod(name, "default", patch)


def _patch_pool(api_server: str, patch: dict[str, Any]) -> None:
    with sync_client.ApiClient(sync_client.Configuration(host=api_server)) as api:
        sync_client.CustomObjectsApi(api).patch_namespaced_custom_object(
            "inference.networking.k8s.io", "v1", "default", "inferencepools", "llama", patch
        )


async def test_a_pool_created_later_and_api_faults_are_waited_out(
    kube: FakeKubeApiServer, picker_for: PickerFactory
) -> None:
    discovery = {"inference_pool": {"name": "llama", "api_server": kube.url}}
    async with picker_for(discovery) as running:
        assert not running.picker.router.endpoints()  # no pool yet: nothing to pick, 503
        kube.faults.inject(r"/pods$", status=500, times=2)  # the API stumbles as the pool appears
        kube.create(PODS, _pod("vllm-0", "127.0.0.2", ready=True))
        kube.create(INFERENCE_POOLS, _pool(8000))
        await until(lambda: running.addresses() == ["127.0.0.2:8000"], within_s=30)  # retried each second
        async with running.stream() as envoy:
            routed = await envoy.request(completion_body())
            assert isinstance(routed, Routed) and routed.endpoint == "127.0.0.2:8000"
