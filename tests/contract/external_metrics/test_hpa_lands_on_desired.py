"""Acceptance: HPA's formula, applied to what we serve over gRPC (KEDA) and the external metrics API, gives
our desired replicas for the documented ``AverageValue`` target of 1, where a ``Value`` target would not.

``hpa_replicas`` restates kubernetes' ``replica_calculator.go`` for External metrics (v1.33 and later, with
the ``Tolerances`` band): ``AverageValue`` (``GetExternalPerPodMetricReplicas``) keeps the current count while
``metric / (target * current)`` is within [1 - down, 1 + up], else ``ceil(metric / target)``; ``Value``
(``GetExternalMetricReplicas``) keeps it while ``metric / target`` is within the band, else
``ceil(metric / target * current)``.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import grpc.aio
import httpx
import pytest

from autoscaler.adapters.keda import externalscaler_pb2 as pb
from autoscaler.adapters.keda import externalscaler_pb2_grpc as pb_grpc
from autoscaler.adapters.keda.scaler import serve_keda
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.core.phases import Phase

HPA_TOLERANCE = 0.1  # the kube-controller-manager default, both directions
DOCUMENTED_TARGET = 1.0  # the HPA's averageValue "1" (for KEDA, the scaler's own metric spec says so)

# (current replicas, our desired replicas): up and down, small and large, one step and many.
OUTSIDE_BAND = [(1, 4), (4, 1), (3, 10), (10, 3), (2, 3), (9, 7), (20, 30), (64, 16)]


def hpa_replicas(
    *,
    metric: float,
    target: float,
    target_type: Literal["AverageValue", "Value"],
    current: int,
    tolerance: float = HPA_TOLERANCE,
) -> int:
    def within(ratio: float) -> bool:
        return 1 - tolerance <= ratio <= 1 + tolerance

    if target_type == "AverageValue":
        return current if within(metric / (target * current)) else math.ceil(metric / target)
    ratio = metric / target
    return current if within(ratio) else math.ceil(ratio * current)


def quantity(text: str) -> float:
    """A Kubernetes quantity as HPA reads it (the forms a metrics API serves: plain or milli)."""
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


@pytest.fixture
async def keda(board: DesiredReplicasBoard) -> AsyncIterator[pb_grpc.ExternalScalerAsyncStub]:
    serving = await serve_keda(board, host="127.0.0.1", port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serving.port}") as channel:
        yield pb_grpc.ExternalScalerStub(channel)
    await serving.server.stop(grace=None)


@pytest.fixture
async def external_api(api: str, pki: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api, verify=ssl.create_default_context(cafile=pki / "ca.crt")
    ) as http:
        yield http


async def served_over_grpc(keda: pb_grpc.ExternalScalerAsyncStub) -> tuple[float, float]:
    """(metric value, target) as KEDA's HPA sees them: GetMetrics over GetMetricSpec's target."""
    ref = pb.ScaledObjectRef(
        name="llama-decode", namespace="serving", scalerMetadata={"autoscaler": "llama", "phase": "decode"}
    )
    spec = (await keda.GetMetricSpec(ref)).metricSpecs[0]
    value = (
        await keda.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricName))
    ).metricValues[0]
    return value.metricValueFloat, spec.targetSizeFloat


async def served_over_external_api(http: httpx.AsyncClient) -> float:
    response = await http.get(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/serving/autoscaler_desired_replicas",
        params={"labelSelector": "autoscaler=llama,phase=decode"},
    )
    response.raise_for_status()
    return sum(quantity(item["value"]) for item in response.json()["items"])  # HPA sums the items


def publish(board: DesiredReplicasBoard, *, current: int, desired: int) -> None:
    board.publish(
        namespace="serving",
        autoscaler="llama",
        phase=Phase.DECODE,
        desired=desired,
        current=current,
        reason="R",
    )


@pytest.mark.parametrize(("current", "desired"), OUTSIDE_BAND, ids=[f"{c}->{d}" for c, d in OUTSIDE_BAND])
async def test_average_value_target_lands_on_our_desired_replicas(
    board: DesiredReplicasBoard,
    keda: pb_grpc.ExternalScalerAsyncStub,
    external_api: httpx.AsyncClient,
    current: int,
    desired: int,
) -> None:
    publish(board, current=current, desired=desired)
    metric, target = await served_over_grpc(keda)
    assert target == DOCUMENTED_TARGET
    assert hpa_replicas(metric=metric, target=target, target_type="AverageValue", current=current) == desired
    metric = await served_over_external_api(external_api)
    assert (
        hpa_replicas(metric=metric, target=DOCUMENTED_TARGET, target_type="AverageValue", current=current)
        == desired
    )


@pytest.mark.parametrize(("current", "desired"), [(1, 4), (3, 10), (4, 2)], ids=["1->4", "3->10", "4->2"])
async def test_a_value_target_would_multiply_by_the_current_replicas(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub, current: int, desired: int
) -> None:
    publish(board, current=current, desired=desired)
    metric, target = await served_over_grpc(keda)
    assert (
        hpa_replicas(metric=metric, target=target, target_type="Value", current=current) == desired * current
    )


async def test_changes_within_the_hpa_tolerance_are_held_unless_the_tolerance_is_zero(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub
) -> None:
    # At 10 replicas our 11 is a 10 % change: HPA's default band keeps 10. An HPA that sets its per-metric
    # tolerance to 0 (behavior.scaleUp/scaleDown.tolerance, KEP-4951) follows us exactly.
    publish(board, current=10, desired=11)
    metric, target = await served_over_grpc(keda)
    assert hpa_replicas(metric=metric, target=target, target_type="AverageValue", current=10) == 10
    assert (
        hpa_replicas(metric=metric, target=target, target_type="AverageValue", current=10, tolerance=0) == 11
    )
