"""The fake API server behaves like kube-apiserver where this project relies on it (official sync client).

If one of these fails, the contract tests above it prove nothing: they are the fake's own contract.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, watch

from tests.contract.kubernetes.conftest import AUTOSCALERS, add_deployment, add_statefulset, assert_valid
from tests.fakes import kube_patch
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import DEPLOYMENTS, PODS, STATEFULSETS, scale_of


def _status_of(error: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/strategic-merge-patch+json", {"spec": {"replicas": 5}}),
        ("application/merge-patch+json", {"spec": {"replicas": 5}}),
        ("application/json-patch+json", [{"op": "replace", "path": "/spec/replicas", "value": 5}]),
    ],
    ids=["strategic merge", "merge", "json patch"],
)
def test_scale_patches_in_every_format_return_a_scale(
    kube: FakeKubeApiServer, sync_api: client.ApiClient, content_type: str, body: Any
) -> None:
    add_deployment(kube, "decode", replicas=2)
    apps = client.AppsV1Api(sync_api)

    scale = apps.patch_namespaced_deployment_scale("decode", "default", body, _content_type=content_type)

    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (5, 2, "app=decode")
    assert apps.read_namespaced_deployment_scale("decode", "default").status.replicas == 5
    assert kube.requests_to("/scale$", method="PATCH")[0].content_type == content_type


def test_a_stale_resource_version_in_a_patch_or_put_is_a_409_status(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    apps = client.AppsV1Api(sync_api)
    stale = apps.read_namespaced_deployment_scale("decode", "default")
    apps.patch_namespaced_deployment_scale("decode", "default", {"spec": {"replicas": 3}})

    with pytest.raises(client.ApiException) as patched:
        apps.patch_namespaced_deployment(
            "decode", "default", {"metadata": {"resourceVersion": stale.metadata.resource_version}}
        )
    stale.spec.replicas = 9
    with pytest.raises(client.ApiException) as put:
        apps.replace_namespaced_deployment_scale("decode", "default", stale)

    for raised in (patched, put):
        status = _status_of(raised.value)
        assert (raised.value.status, status["kind"], status["reason"], status["code"]) == (
            409,
            "Status",
            "Conflict",
            409,
        )
        assert status["details"] == {"name": "decode", "group": "apps", "kind": "deployments"}
    assert kube.get(DEPLOYMENTS, "decode")["spec"]["replicas"] == 3


def test_versions_move_on_every_write_and_generation_only_on_spec_changes(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    apps = client.AppsV1Api(sync_api)
    first = apps.read_namespaced_deployment("decode", "default").metadata

    labelled = apps.patch_namespaced_deployment(
        "decode", "default", {"metadata": {"labels": {"tier": "gpu"}}}
    )
    same = apps.patch_namespaced_deployment("decode", "default", {"metadata": {"labels": {"tier": "gpu"}}})
    scaled = apps.patch_namespaced_deployment("decode", "default", {"spec": {"replicas": 3}})

    versions = [int(m.resource_version) for m in (first, labelled.metadata, same.metadata, scaled.metadata)]
    assert versions[1] > versions[0] and versions[2] == versions[1] and versions[3] > versions[2]
    assert [labelled.metadata.generation, scaled.metadata.generation] == [1, 2]
    # The write's answer predates the workload controller; a later read shows it caught up.
    assert (scaled.status.observed_generation, scaled.status.replicas) == (1, 2)
    status = apps.read_namespaced_deployment("decode", "default").status
    assert (status.observed_generation, status.replicas) == (2, 3)


def test_writes_to_the_main_resource_keep_the_stored_status(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=2)
    apps = client.AppsV1Api(sync_api)
    deployment = apps.read_namespaced_deployment("decode", "default")
    deployment.status.ready_replicas = 99

    replaced = apps.replace_namespaced_deployment("decode", "default", deployment)

    assert replaced.status.ready_replicas == 2


def test_custom_resources_ignore_a_created_status_and_refuse_an_unconditional_put(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    body = {
        "apiVersion": AUTOSCALERS.api_version,
        "kind": AUTOSCALERS.kind,
        "metadata": {"name": "x"},
        "spec": {},
        "status": {"message": "made up"},
    }
    custom = client.CustomObjectsApi(sync_api)
    args = (AUTOSCALERS.group, AUTOSCALERS.version, "default", AUTOSCALERS.plural)
    created = custom.create_namespaced_custom_object(*args, body)
    assert "status" not in created

    with pytest.raises(client.ApiException) as raised:
        custom.replace_namespaced_custom_object(*args, "x", body)

    assert (raised.value.status, _status_of(raised.value)["reason"]) == (422, "Invalid")


def test_a_label_selector_watch_sees_an_object_leave_as_deleted(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=1)
    core = client.CoreV1Api(sync_api)
    pods = core.list_namespaced_pod("default", label_selector="app=decode")
    (pod,) = pods.items
    kube.store.update(PODS, "default", pod.metadata.name, _relabel("app", "quarantined"))

    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_pod,
        "default",
        label_selector="app=decode",
        resource_version=pods.metadata.resource_version,
        timeout_seconds=5,
    ):
        events.append(event)
        if len(events) == 2:
            break

    # The relabelled pod leaves the selector (DELETED) and its replacement joins it (ADDED).
    assert [(e["type"], e["object"].metadata.name == pod.metadata.name) for e in events] == [
        ("DELETED", True),
        ("ADDED", False),
    ]


def _relabel(key: str, value: str) -> Any:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        labels = {**obj["metadata"]["labels"], key: value}
        return {**obj, "metadata": {**obj["metadata"], "labels": labels}}

    return change


def test_a_deleted_pod_is_replaced_and_the_cheapest_pod_goes_first(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=3)
    core, apps = client.CoreV1Api(sync_api), client.AppsV1Api(sync_api)
    names = [p.metadata.name for p in core.list_namespaced_pod("default").items]
    core.delete_namespaced_pod(names[0], "default")
    after = {p.metadata.name for p in core.list_namespaced_pod("default").items}
    assert len(after) == 3 and names[0] not in after
    cheapest = sorted(after)[1]
    cost = {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-5"}}}
    core.patch_namespaced_pod(cheapest, "default", cost)

    apps.patch_namespaced_deployment_scale("decode", "default", {"spec": {"replicas": 2}})

    assert cheapest not in {p.metadata.name for p in core.list_namespaced_pod("default").items}


def test_injected_faults_hit_the_next_matching_requests_only(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=1)
    apps = client.AppsV1Api(sync_api)
    kube.faults.inject("/deployments/decode$", status=503, times=2, method="GET")

    codes = []
    for _ in range(3):
        try:
            apps.read_namespaced_deployment("decode", "default")
            codes.append(200)
        except client.ApiException as error:
            codes.append(error.status)

    assert codes == [503, 503, 200]
    assert apps.read_namespaced_deployment_scale("decode", "default").spec.replicas == 1


def test_the_objects_the_fake_serves_are_schema_valid(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=1)
    add_statefulset(kube, "prefill", replicas=1)
    kube.workloads.start_pending = True
    client.AppsV1Api(sync_api).patch_namespaced_deployment_scale(
        "decode", "default", {"spec": {"replicas": 2}}
    )

    served = [
        *kube.list(DEPLOYMENTS),
        *kube.list(STATEFULSETS),
        *kube.list(PODS),
        scale_of(DEPLOYMENTS, kube.get(DEPLOYMENTS, "decode")),
    ]

    assert {p["status"]["phase"] for p in kube.list(PODS)} == {"Running", "Pending"}
    for obj in served:
        assert_valid(obj)


def test_unsupported_requests_fail_as_the_real_server_would(
    kube: FakeKubeApiServer, sync_api: client.ApiClient
) -> None:
    add_deployment(kube, "decode", replicas=1)
    apps = client.AppsV1Api(sync_api)

    with pytest.raises(client.ApiException) as apply:
        apps.patch_namespaced_deployment(
            "decode", "default", {"spec": {"replicas": 2}}, _content_type="application/apply-patch+yaml"
        )
    with pytest.raises(client.ApiException) as missing:
        apps.read_namespaced_daemon_set("decode", "default")
    with pytest.raises(client.ApiException) as negative:
        apps.patch_namespaced_deployment_scale("decode", "default", {"spec": {"replicas": -1}})

    assert [apply.value.status, missing.value.status, negative.value.status] == [415, 404, 422]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"a": None}, {"b": [1]}),
        ({"b": [2]}, {"a": {"x": 1}, "b": [2]}),
        ({"a": {"y": 2}}, {"a": {"x": 1, "y": 2}, "b": [1]}),
    ],
    ids=["null deletes", "lists are replaced", "maps merge"],
)
def test_json_merge_patch(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert kube_patch.merge_patch({"a": {"x": 1}, "b": [1]}, patch) == expected


def test_strategic_merge_patch_merges_keyed_lists_and_honours_delete() -> None:
    target = {"containers": [{"name": "vllm", "image": "a"}, {"name": "sidecar", "image": "s"}]}
    patch = {"containers": [{"name": "vllm", "image": "b"}, {"name": "sidecar", "$patch": "delete"}]}

    assert kube_patch.strategic_merge_patch(target, patch) == {"containers": [{"name": "vllm", "image": "b"}]}


def test_json_patch_test_operation_guards_the_change() -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 4},
    ]

    with pytest.raises(kube_patch.PatchError):
        kube_patch.json_patch({"spec": {"replicas": 2}}, ops)
    assert kube_patch.json_patch({"spec": {"replicas": 3}}, ops) == {"spec": {"replicas": 4}}
