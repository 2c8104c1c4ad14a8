"""Kubernetes discovery against the fake API server (real HTTP, the official client): ready pods become
endpoints, the controller's draining mark stops new requests, a deleted pod leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
from kubernetes import client as sync_client

from autoscaler.adapters.proxy.app import Proxy
from tests.contract.router.conftest import ProxyFactory, serve
from tests.contract.router.fake_engine import FakeEngine, completion
from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.fakes.kube_resources import PODS


@pytest.fixture
def kube() -> Iterator[FakeKubeApiServer]:
    yield from running_server()


def _pod(name: str, *, ready: bool) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "vllm", "llm-d.ai/role": "prefill-decode"}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]},
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_pods_follow_readiness_draining_and_deletion(
    kube: FakeKubeApiServer, proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("vllm-0")
    kube.create(PODS, _pod("vllm-0", ready=True))
    kube.create(PODS, _pod("vllm-1", ready=False))
    async with serve(engine.app) as engine_url:
        port = int(engine_url.rsplit(":", 1)[1])
        discovery = {"kubernetes": {"selector": "app=vllm", "port": port, "api_server": kube.url}}
        async with proxy_for(discovery) as (url, proxy):
            assert list(proxy.router.endpoints()) == ["vllm-0"]  # vllm-1 is not Ready
            assert (await client.post(f"{url}/v1/completions", content=completion())).status_code == 200

            await asyncio.to_thread(_mark_draining, kube.url, "vllm-0")
            await _until(lambda: not _ready(proxy))
            r = await client.post(f"{url}/v1/completions", content=completion())
            assert r.status_code == 503

            kube.delete(PODS, "vllm-0")
            await _until(lambda: not proxy.router.endpoints())


def _ready(proxy: Proxy) -> list[str]:
    return proxy.fleet.ready()


def _mark_draining(api_server: str, name: str) -> None:
    """What the controller does to a pod it chose for removal."""
    with sync_client.ApiClient(sync_client.Configuration(host=api_server)) as api:
        sync_client.CoreV1Api(api).patch_namespaced_pod(
            name,
            "default",
            {"metadata": {"annotations": {"inference-autoscaler.io/draining-since": "2026-11-25T10:00:00Z"}}},
        )
