"""CustomResources against the fake: list-then-watch, resuming, 410 after compaction, status writes."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.resources import CustomResources, ResourceKind, WatchEvent
from tests.contract.kubernetes.conftest import AUTOSCALERS
from tests.fakes.kube_apiserver import FakeKubeApiServer

KIND = ResourceKind(group=AUTOSCALERS.group, version=AUTOSCALERS.version, plural=AUTOSCALERS.plural)


def _autoscaler(name: str, *, max_replicas: int = 8) -> dict[str, Any]:
    return {
        "apiVersion": AUTOSCALERS.api_version,
        "kind": AUTOSCALERS.kind,
        "metadata": {"name": name},
        "spec": {"mode": "direct", "maxReplicas": max_replicas},
    }


async def _collect(resources: CustomResources, *, since: str, count: int, **options: Any) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    async with contextlib.aclosing(resources.watch(resource_version=since, timeout_s=5, **options)) as stream:
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_list_then_watch_sees_every_later_change_in_order(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.create(AUTOSCALERS, _autoscaler("llama"))
    resources = CustomResources(api_client, KIND)
    items, version = await resources.list()
    kube.create(AUTOSCALERS, _autoscaler("qwen"))
    kube.store.update(
        AUTOSCALERS, "default", "llama", lambda o: {**o, "spec": {**o["spec"], "maxReplicas": 4}}
    )
    kube.delete(AUTOSCALERS, "qwen")

    events = await _collect(resources, since=version, count=3)

    assert [i["metadata"]["name"] for i in items] == ["llama"]
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "qwen"),
        ("MODIFIED", "llama"),
        ("DELETED", "qwen"),
    ]
    assert events[1].object["metadata"]["generation"] == 2
    versions = [int(e.resource_version) for e in events]
    assert versions == sorted(versions) and versions[0] > int(version)


async def test_a_watch_resumed_from_the_last_version_misses_nothing(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    resources = CustomResources(api_client, KIND)
    _, version = await resources.list(namespace="default")
    kube.create(AUTOSCALERS, _autoscaler("a"))
    (first,) = await _collect(resources, since=version, count=1, namespace="default")
    kube.create(AUTOSCALERS, _autoscaler("b"))
    kube.create(AUTOSCALERS, _autoscaler("elsewhere"), namespace="other")

    (second,) = await _collect(resources, since=first.resource_version, count=1, namespace="default")

    assert (first.object["metadata"]["name"], second.object["metadata"]["name"]) == ("a", "b")


async def test_the_server_ends_a_watch_after_its_timeout(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    resources = CustomResources(api_client, KIND)
    _, version = await resources.list()

    events = [e async for e in resources.watch(resource_version=version, timeout_s=1)]

    assert events == []
    (request,) = kube.requests_to("/inferenceautoscalers$")[-1:]
    assert (request.query["watch"], request.query["timeoutSeconds"]) == ("true", "1")


async def test_a_compacted_version_is_expired_so_the_caller_lists_again(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    resources = CustomResources(api_client, KIND)
    _, version = await resources.list()
    kube.create(AUTOSCALERS, _autoscaler("llama"))
    kube.store.compact()

    with pytest.raises(errors.Expired):
        await _collect(resources, since=version, count=1)
    items, _ = await resources.list()
    assert [i["metadata"]["name"] for i in items] == ["llama"]


async def test_status_writes_touch_only_the_status(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.create(AUTOSCALERS, _autoscaler("llama"))
    resources = CustomResources(api_client, KIND)
    before = await resources.get("default", "llama")

    after = await resources.patch_status(
        "default", "llama", {"desiredReplicas": {"decode": 4}, "message": "ok"}
    )

    assert after["status"] == {"desiredReplicas": {"decode": 4}, "message": "ok"}
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]  # status is not spec
    cleared = await resources.patch_status("default", "llama", {"message": None})
    assert cleared["status"] == {"desiredReplicas": {"decode": 4}}


async def test_a_resource_deleted_mid_cycle_is_not_found(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.create(AUTOSCALERS, _autoscaler("llama"))
    resources = CustomResources(api_client, KIND)
    await resources.get("default", "llama")
    kube.delete(AUTOSCALERS, "llama")

    with pytest.raises(errors.NotFound):
        await resources.patch_status("default", "llama", {"message": "scaled"})
