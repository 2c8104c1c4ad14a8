"""Fixtures for the controller's contract tests: the fake API server (official client over real HTTP), a
fake Prometheus, a manual clock, and builders for serving deployments and their InferenceAutoscalers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes.aio import client

from autoscaler.adapters.prometheus_signals import PrometheusSignals
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.adapters.router_metrics import RouterLoadReader
from autoscaler.cli.controller import build_controller
from autoscaler.controller.loop import Controller, ControllerSettings
from autoscaler.controller.signals import SignalReader
from autoscaler.core import ports
from tests.contract.controller.fake_router import FakeRouterMetrics
from tests.contract.kubernetes.conftest import assert_valid
from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.fakes.kube_resources import EVENTS, PODS
from tests.fakes.prometheus_api import FakePrometheus
from tests.fakes.serving import AUTOSCALERS, LEADER_WORKER_SETS, ManualClock
from tests.fakes.serving import POOL as POOL
from tests.fakes.serving import add_autoscaler as add_autoscaler
from tests.fakes.serving import add_pool as add_pool
from tests.fakes.serving import autoscaler as autoscaler
from tests.fakes.serving import heavy as heavy
from tests.fakes.serving import idle as idle

CRD = Path(__file__).resolve().parents[3] / "charts/inference-autoscaler/crds/inferenceautoscalers.yaml"


@pytest.fixture
def kube() -> Iterator[FakeKubeApiServer]:
    yield from running_server(custom_types=[LEADER_WORKER_SETS, AUTOSCALERS])


@pytest.fixture
async def api_client(kube: FakeKubeApiServer) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=kube.url)) as api:
        yield api


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    server = await FakePrometheus().start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=float(int(time.time())))  # near real time: pods' creation times are real


@pytest.fixture
def board() -> DesiredReplicasBoard:
    return DesiredReplicasBoard()


ControllerFactory = Callable[..., Controller]


class WallClock:
    """Epoch seconds, for tests that run the live loop (its scheduler keeps real time)."""

    def now(self) -> float:
        return time.time()


@pytest.fixture
def make_controller(
    api_client: client.ApiClient, prom: FakePrometheus, clock: ManualClock, board: DesiredReplicasBoard
) -> ControllerFactory:
    def make(
        identity: str = "controller-0",
        *,
        own_clock: ports.Clock | None = None,
        signals: SignalReader | None = None,
        **settings: Any,
    ) -> Controller:
        options = {"lease_namespace": "default", "namespace": "default", "request_timeout_s": 5.0, **settings}
        return build_controller(
            api_client,
            settings=ControllerSettings(identity=identity, **options),
            signals=signals or PrometheusSignals(prom.url, timeout_s=2.0),
            board=board,
            clock=own_clock or clock,
            router=RouterLoadReader(allowed_hosts=frozenset({"127.0.0.1"})),  # the fake router's host
        )

    return make


def replicas(kube: FakeKubeApiServer, phase: str) -> int:
    from tests.fakes.kube_resources import DEPLOYMENTS

    return int(kube.get(DEPLOYMENTS, f"{POOL}-{phase}")["spec"]["replicas"])


def pods(kube: FakeKubeApiServer, phase: str) -> list[dict[str, Any]]:
    return kube.list(PODS, selector=f"app={POOL}-{phase}")


def status(kube: FakeKubeApiServer) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(AUTOSCALERS, POOL).get("status") or {}
    return found


def condition(kube: FakeKubeApiServer, kind: str) -> dict[str, Any]:
    return next(c for c in status(kube).get("conditions", []) if c["type"] == kind)


def events(kube: FakeKubeApiServer) -> list[dict[str, Any]]:
    return kube.list(EVENTS)


def reasons(kube: FakeKubeApiServer) -> list[str]:
    return [e["reason"] for e in events(kube)]


def crd_errors(obj: dict[str, Any]) -> list[str]:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [error.message for error in jsonschema.Draft4Validator(schema).iter_errors(obj)]


def assert_everything_written_is_valid(kube: FakeKubeApiServer) -> None:
    """Every POST and PUT body satisfies the Kubernetes schemas; the stored resource satisfies our CRD."""
    for request in kube.requests:
        if request.method in ("POST", "PUT") and "inference-autoscaler.io" not in request.path:
            assert_valid(request.body)
    for obj in kube.list(AUTOSCALERS):
        assert crd_errors(obj) == [], obj.get("status")
    for pod in kube.list(PODS):  # annotated through merge patches: the results must still be valid pods
        assert_valid({"apiVersion": "v1", "kind": "Pod", **pod})


@pytest.fixture
async def router_metrics() -> AsyncIterator[FakeRouterMetrics]:
    server = await FakeRouterMetrics().start()
    yield server
    await server.stop()
