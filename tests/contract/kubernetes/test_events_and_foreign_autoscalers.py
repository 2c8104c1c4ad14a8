"""EventRecorder writes valid events.k8s.io/v1 Events; the finder sees HPAs and ScaledObjects on a target."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.events import EventRecorder
from autoscaler.adapters.kubernetes.foreign import ForeignAutoscaler, ForeignAutoscalerFinder
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from tests.contract.kubernetes.conftest import ManualClock, assert_writes_valid
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import EVENTS, HPAS, SCALED_OBJECTS

DECODE = WorkloadRef(api_version="apps/v1", kind="Deployment", name="decode", namespace="default")


async def test_each_scale_event_is_a_valid_event_with_its_own_name(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    clock = ManualClock()
    recorder = EventRecorder(api_client, instance="autoscaler-7f9c-x2", clock=clock)

    first = await recorder.emit(DECODE, reason="ScaledUp", note="decode 2 -> 4: ITL p90 0.061 s over 0.050 s")
    clock.advance(0.001)
    second = await recorder.emit(DECODE, reason="HoldStaleSignals", note="x" * 5000, warning=True)

    stored = {e["metadata"]["name"]: e for e in kube.list(EVENTS)}
    assert set(stored) == {first, second}
    assert stored[first]["regarding"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "decode",
        "namespace": "default",
    }
    assert (stored[second]["type"], len(stored[second]["note"])) == ("Warning", 1024)
    assert stored[first]["reportingController"] == "inference-autoscaler.io/controller"
    assert assert_writes_valid(kube, "/events$") == 2


async def test_a_failing_event_write_is_a_typed_error(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.faults.inject("/events$", status=503)

    with pytest.raises(errors.Unavailable):
        await EventRecorder(api_client, instance="a", clock=ManualClock()).emit(
            DECODE, reason="ScaledUp", note="n"
        )


def _hpa(name: str, target: str, *, kind: str = "Deployment") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": 1,
            "maxReplicas": 8,
        },
    }


def _scaled_object(name: str, target: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"scaleTargetRef": target, "triggers": []}}


async def test_finds_the_hpas_and_scaled_objects_that_target_the_workload(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.create(HPAS, _hpa("decode-hpa", "decode"))
    kube.create(HPAS, _hpa("prefill-hpa", "prefill"))
    kube.create(HPAS, _hpa("decode-sts", "decode", kind="StatefulSet"))
    kube.create(SCALED_OBJECTS, _scaled_object("decode-keda", {"name": "decode"}))  # KEDA's default kind
    kube.create(SCALED_OBJECTS, _scaled_object("other", {"name": "decode", "kind": "Rollout"}))
    kube.create(HPAS, _hpa("elsewhere", "decode"), namespace="other")

    found = await ForeignAutoscalerFinder(api_client).targeting(DECODE)

    assert found == (
        ForeignAutoscaler("HorizontalPodAutoscaler", "decode-hpa", "default"),
        ForeignAutoscaler("ScaledObject", "decode-keda", "default"),
    )


async def test_a_cluster_without_keda_has_no_scaled_objects(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.faults.inject("/scaledobjects$", status=404)

    assert await ForeignAutoscalerFinder(api_client).targeting(DECODE) == ()
