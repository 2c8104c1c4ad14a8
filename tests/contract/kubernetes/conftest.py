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

from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.fakes.kube_resources import STATEFULSETS
from tests.fakes.serving import AUTOSCALERS as AUTOSCALERS
from tests.fakes.serving import LEADER_WORKER_SETS as LEADER_WORKER_SETS
from tests.fakes.serving import OPTED_IN
from tests.fakes.serving import ManualClock as ManualClock
from tests.fakes.serving import add_deployment as add_deployment
from tests.fakes.serving import deployment as deployment

# Kubernetes versions whose schemas every written object must satisfy (oldest supported and newest target).
KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")

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
