"""Fixtures for the Kubernetes contract tests: the fake API server, official clients bound to it, builders.

Every test talks real HTTP on 127.0.0.1 (a free port) through the official ``kubernetes`` client: the
asyncio client for the adapter, the sync client where a test pokes the server the way another actor would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client as sync_client
from kubernetes.aio import client

from autoscaler.adapters.kubernetes.workload import OPT_IN_LABEL, OPT_IN_VALUE
from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.fakes.kube_resources import DEPLOYMENTS, STATEFULSETS, ScalePaths, custom_resource

# Kubernetes versions whose schemas every written object must satisfy (oldest supported and newest target).
KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")

LEADER_WORKER_SETS = custom_resource(
    group="leaderworkerset.x-k8s.io",
    version="v1",
    plural="leaderworkersets",
    kind="LeaderWorkerSet",
    scale=ScalePaths(label_selector="status.hpaPodSelector"),
)
AUTOSCALERS = custom_resource(
    group="inference-autoscaler.io",
    version="v1alpha1",
    plural="inferenceautoscalers",
    kind="InferenceAutoscaler",
)


class ManualClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture
def kube() -> Iterator[FakeKubeApiServer]:
    yield from running_server(custom_types=[LEADER_WORKER_SETS, AUTOSCALERS])


@pytest.fixture
async def api_client(kube: FakeKubeApiServer) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=kube.url)) as api:
        yield api


@pytest.fixture
def sync_api(kube: FakeKubeApiServer) -> Iterator[sync_client.ApiClient]:
    with sync_client.ApiClient(sync_client.Configuration(host=kube.url)) as api:
        yield api


OPTED_IN = {OPT_IN_LABEL: OPT_IN_VALUE}  # every workload built here: its owner lets the controller scale it


def deployment(name: str, *, replicas: int, app: str | None = None) -> dict[str, Any]:
    labels = {"app": app or name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**labels, **OPTED_IN}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]},
            },
        },
    }


def statefulset(name: str, *, replicas: int, parallel: bool = False) -> dict[str, Any]:
    spec = deployment(name, replicas=replicas)["spec"]
    spec.update(serviceName=name, podManagementPolicy="Parallel" if parallel else "OrderedReady")
    metadata = {"name": name, "labels": OPTED_IN}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata, "spec": spec}


def leader_worker_set(name: str, *, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "labels": OPTED_IN},
        "spec": {"replicas": replicas, "leaderWorkerTemplate": {"size": 2}},
        "status": {"replicas": replicas, "hpaPodSelector": f"leaderworkerset.sigs.k8s.io/name={name}"},
    }


def add_deployment(kube: FakeKubeApiServer, name: str, *, replicas: int) -> dict[str, Any]:
    return kube.create(DEPLOYMENTS, deployment(name, replicas=replicas))


def add_statefulset(
    kube: FakeKubeApiServer, name: str, *, replicas: int, parallel: bool = False
) -> dict[str, Any]:
    return kube.create(STATEFULSETS, statefulset(name, replicas=replicas, parallel=parallel))


def assert_valid(obj: dict[str, Any]) -> None:
    """The object satisfies the published Kubernetes schemas (strict: no unknown fields) of every version."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def assert_writes_valid(kube: FakeKubeApiServer, path: str) -> int:
    """Validate the body of every POST and PUT the fake received on ``path``; returns how many there were."""
    writes = [r for r in kube.requests_to(path) if r.method in ("POST", "PUT")]
    for request in writes:
        assert_valid(request.body)
    return len(writes)
