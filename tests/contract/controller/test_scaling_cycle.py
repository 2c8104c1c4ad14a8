"""One leader's cycles against the fake API server and a fake Prometheus: scale up in one write, scale down
through the router's drain (which replica, how long), advisory mode, and a refusal beside an HPA."""

from __future__ import annotations

from typing import Any

from autoscaler.adapters.kubernetes.pods import DELETION_COST_ANNOTATION, DRAINING_ANNOTATION
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.core.phases import Phase
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    add_autoscaler,
    add_pool,
    assert_everything_written_is_valid,
    autoscaler,
    condition,
    heavy,
    idle,
    pods,
    reasons,
    replicas,
    status,
)
from tests.contract.controller.fake_router import FakeRouterMetrics
from tests.contract.kubernetes.conftest import ManualClock, add_statefulset
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import HPAS, PODS, STATEFULSETS
from tests.fakes.prometheus_api import FakePrometheus


def _annotations(kube: FakeKubeApiServer, phase: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p["metadata"].get("annotations") or {} for p in pods(kube, phase)}


def _scale_writes(kube: FakeKubeApiServer) -> int:
    return len(kube.requests_to("/scale$", method="PUT"))


async def test_heavy_load_scales_both_phases_up_and_reports_why(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    board: DesiredReplicasBoard,
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = make_controller()

    assert await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"

    got = status(kube)
    for phase in ("prefill", "decode"):
        assert replicas(kube, phase) == got["phases"][phase]["desiredReplicas"] > 1
        assert got["phases"][phase]["currentReplicas"] == 1
        assert got["phases"][phase]["reason"] in ("ScaleUp", "ScaleUpLimited")
    assert got["observedGeneration"] == 1 and got["lastDecisionTime"].endswith("Z")
    assert condition(kube, "Ready")["status"] == "True"
    assert condition(kube, "SignalsHealthy")["status"] == "True"
    assert condition(kube, "ScalingActive")["reason"] == "Actuating"
    assert all(c["observedGeneration"] == 1 for c in got["conditions"])
    assert reasons(kube).count("ScaledUp") == 2
    published = board.get(namespace="default", autoscaler=POOL, phase=Phase.DECODE)
    assert published is not None and published.desired == replicas(kube, "decode")
    assert_everything_written_is_valid(kube)


async def test_scale_down_drains_the_replica_with_fewest_requests_then_removes_exactly_it(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
) -> None:
    add_pool(kube, decode=2)
    add_autoscaler(kube, autoscaler(router={"metricsUrl": router_metrics.url}))
    idle(prom)
    busy, light = sorted(_annotations(kube, "decode"))
    router_metrics.endpoints = {busy: (3, 10), light: (1, 50)}
    controller = make_controller()
    assert await controller.elect()

    assert await controller.reconcile("default", POOL) == "decided"

    marks = _annotations(kube, "decode")
    assert DRAINING_ANNOTATION in marks[light] and marks[light][DELETION_COST_ANNOTATION] == "-1000"
    assert DRAINING_ANNOTATION not in marks[busy]
    assert replicas(kube, "decode") == 2  # its last request is still in flight
    assert condition(kube, "ScalingActive")["reason"] == "Draining"
    assert status(kube)["phases"]["decode"]["drainingReplicas"] == 1
    assert "Draining" in reasons(kube)

    router_metrics.endpoints[light] = (0, 50)
    assert await controller.reconcile("default", POOL) == "decided"

    assert replicas(kube, "decode") == 1
    assert sorted(_annotations(kube, "decode")) == [busy]
    assert "ScaledDown" in reasons(kube)
    assert_everything_written_is_valid(kube)


async def test_between_idle_replicas_the_one_with_least_cached_state_goes(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
) -> None:
    add_pool(kube, decode=2)
    add_autoscaler(kube, autoscaler(router={"metricsUrl": router_metrics.url}))
    idle(prom)
    warm, cold = sorted(_annotations(kube, "decode"))
    router_metrics.endpoints = {warm: (0, 500), cold: (0, 5)}
    controller = make_controller()
    assert await controller.elect()

    assert await controller.reconcile("default", POOL) == "decided"

    assert sorted(_annotations(kube, "decode")) == [warm]


async def test_a_drain_is_bounded_by_the_drain_timeout(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
    clock: ManualClock,
) -> None:
    add_pool(kube, decode=2)
    add_autoscaler(kube, autoscaler(router={"metricsUrl": router_metrics.url}))  # drainTimeoutSeconds 60
    idle(prom)
    router_metrics.endpoints = {name: (5, 0) for name in _annotations(kube, "decode")}
    controller = make_controller()
    assert await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"
    assert replicas(kube, "decode") == 2

    clock.advance(30)
    await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"
    assert replicas(kube, "decode") == 2

    clock.advance(31)
    await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"
    assert replicas(kube, "decode") == 1


async def test_demand_returning_during_a_drain_lifts_the_marks(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
    clock: ManualClock,
) -> None:
    add_pool(kube, decode=2)
    add_autoscaler(kube, autoscaler(router={"metricsUrl": router_metrics.url}))
    idle(prom)
    router_metrics.endpoints = {name: (2, 0) for name in _annotations(kube, "decode")}
    controller = make_controller()
    assert await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"
    assert any(DRAINING_ANNOTATION in a for a in _annotations(kube, "decode").values())

    heavy(prom)
    clock.advance(15)
    await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"

    assert not any(DRAINING_ANNOTATION in a for a in _annotations(kube, "decode").values())
    assert not any(DELETION_COST_ANNOTATION in a for a in _annotations(kube, "decode").values())
    assert replicas(kube, "decode") > 2


async def test_without_a_router_a_ready_replica_waits_out_the_drain_bound(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, clock: ManualClock
) -> None:
    add_pool(kube, decode=2)
    add_autoscaler(kube, autoscaler())
    idle(prom)
    controller = make_controller()
    assert await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"
    assert replicas(kube, "decode") == 2

    clock.advance(60)
    await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"
    assert replicas(kube, "decode") == 1


async def test_advisory_mode_publishes_and_never_writes_scale(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    board: DesiredReplicasBoard,
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler(mode="advisory"))
    heavy(prom)
    controller = make_controller()
    assert await controller.elect()

    assert await controller.reconcile("default", POOL) == "decided"

    assert _scale_writes(kube) == 0 and replicas(kube, "prefill") == 1
    published = board.get(namespace="default", autoscaler=POOL, phase=Phase.PREFILL)
    assert published is not None and published.desired > 1 and published.current == 1
    assert status(kube)["phases"]["prefill"]["desiredReplicas"] == published.desired
    assert condition(kube, "ScalingActive")["reason"] == "Advisory"
    assert_everything_written_is_valid(kube)


async def test_direct_mode_is_refused_beside_an_hpa_on_the_same_workload(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    board: DesiredReplicasBoard,
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    kube.create(
        HPAS,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "decode-hpa"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{POOL}-decode"},
                "minReplicas": 1,
                "maxReplicas": 4,
            },
        },
    )
    heavy(prom)
    controller = make_controller()
    assert await controller.elect()

    assert await controller.reconcile("default", POOL) == "decided"
    assert await controller.reconcile("default", POOL) == "decided"

    assert _scale_writes(kube) == 0
    active = condition(kube, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "ForeignAutoscaler")
    assert "HorizontalPodAutoscaler default/decode-hpa" in active["message"]
    assert reasons(kube).count("ForeignAutoscaler") == 1  # announced once, not every cycle
    assert board.get(namespace="default", autoscaler=POOL, phase=Phase.DECODE) is not None
    assert_everything_written_is_valid(kube)


async def test_an_aggregated_statefulset_drains_and_loses_its_highest_ordinals(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
) -> None:
    add_statefulset(kube, POOL, replicas=3, parallel=True)
    obj = autoscaler(router={"metricsUrl": router_metrics.url})
    obj["spec"]["phases"] = {
        "aggregated": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": POOL},
            "maxReplicas": 4,
        }
    }
    add_autoscaler(kube, obj)
    prom.load(POOL, "aggregated", rate=0.0)
    router_metrics.endpoints = {f"{POOL}-0": (0, 0), f"{POOL}-1": (0, 0), f"{POOL}-2": (0, 0)}
    controller = make_controller()
    assert await controller.elect()

    assert await controller.reconcile("default", POOL) == "decided"

    assert kube.get(STATEFULSETS, POOL)["spec"]["replicas"] == 1
    assert [p["metadata"]["name"] for p in kube.list(PODS, selector=f"app={POOL}")] == [f"{POOL}-0"]
    patched = {r.path.rsplit("/", 1)[1] for r in kube.requests_to("/pods/", method="PATCH")}
    assert patched == {f"{POOL}-1", f"{POOL}-2"}
    assert status(kube)["phases"]["aggregated"]["desiredReplicas"] == 1
    assert "prefill" not in status(kube)["phases"]
    assert_everything_written_is_valid(kube)
