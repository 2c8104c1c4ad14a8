"""KEDA's four calls over real gRPC: activity, the pushed activity stream, the metric spec and the value."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from autoscaler.adapters.keda import externalscaler_pb2 as pb
from autoscaler.adapters.keda import externalscaler_pb2_grpc as pb_grpc
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.core.phases import Phase

NOT_FOUND = grpc.StatusCode.NOT_FOUND


def ref(**metadata: str) -> pb.ScaledObjectRef:
    """The ScaledObjectRef KEDA sends: the trigger's metadata map verbatim (scalerAddress included)."""
    return pb.ScaledObjectRef(
        name="llama-decode",
        namespace="serving",
        scalerMetadata={"scalerAddress": "scaler:9443", **metadata},
    )


def publish(board: DesiredReplicasBoard, desired: int, *, namespace: str = "serving") -> None:
    board.publish(
        namespace=namespace, autoscaler="llama", phase=Phase.DECODE, desired=desired, current=2, reason="R"
    )


async def test_is_active_while_desired_is_above_zero(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub
) -> None:
    publish(board, 3)
    assert (await keda.IsActive(ref(autoscaler="llama", phase="decode"))).result is True
    publish(board, 0)
    assert (await keda.IsActive(ref(autoscaler="llama", phase="decode"))).result is False


async def test_metric_spec_targets_one_replica_per_unit_even_before_the_first_decision(
    keda: pb_grpc.ExternalScalerAsyncStub,
) -> None:
    spec = await keda.GetMetricSpec(ref(autoscaler="llama", phase="prefill"))
    assert [(s.metricName, s.targetSize, s.targetSizeFloat) for s in spec.metricSpecs] == [
        ("autoscaler-desired-replicas-prefill", 1, 1.0)
    ]
    named = await keda.GetMetricSpec(ref(autoscaler="llama", phase="prefill", metricName="llama-prefill"))
    assert named.metricSpecs[0].metricName == "llama-prefill"


async def test_metrics_carry_desired_replicas_as_float_and_as_the_deprecated_integer(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub
) -> None:
    publish(board, 7)
    request = pb.GetMetricsRequest(
        scaledObjectRef=ref(autoscaler="llama", phase="decode"), metricName="s0-autoscaler-desired-replicas"
    )
    values = (await keda.GetMetrics(request)).metricValues
    assert [(v.metricName, v.metricValue, v.metricValueFloat) for v in values] == [
        ("s0-autoscaler-desired-replicas", 7, 7.0)
    ]


async def test_namespace_defaults_to_the_scaled_objects_and_metadata_overrides_it(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub
) -> None:
    publish(board, 2)
    publish(board, 5, namespace="models")
    mine = await keda.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref(autoscaler="llama", phase="decode"))
    )
    other = await keda.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref(autoscaler="llama", phase="decode", namespace="models"))
    )
    assert (mine.metricValues[0].metricValueFloat, other.metricValues[0].metricValueFloat) == (2.0, 5.0)


@pytest.mark.parametrize(
    ("metadata", "code", "words"),
    [
        ({"autoscaler": "mistral", "phase": "decode"}, NOT_FOUND, "serving/mistral phase decode"),
        ({"autoscaler": "llama", "phase": "prefill"}, NOT_FOUND, "published: serving/llama/decode"),
        ({"autoscaler": "llama", "phase": "encode"}, NOT_FOUND, "unknown phase 'encode'"),
        ({"phase": "decode"}, grpc.StatusCode.INVALID_ARGUMENT, "lacks autoscaler"),
    ],
    ids=["unknown autoscaler", "unpublished phase", "unknown phase", "no autoscaler key"],
)
async def test_a_trigger_naming_nothing_we_publish_is_refused_with_a_clear_status(
    board: DesiredReplicasBoard,
    keda: pb_grpc.ExternalScalerAsyncStub,
    metadata: dict[str, str],
    code: grpc.StatusCode,
    words: str,
) -> None:
    publish(board, 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await keda.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(**metadata)))
    assert refused.value.code() is code
    assert words in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await keda.IsActive(ref(**metadata))
    assert again.value.code() is code


async def test_the_activity_stream_sends_the_current_state_then_pushes_each_flip(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub
) -> None:
    publish(board, 0)
    stream = keda.StreamIsActive(ref(autoscaler="llama", phase="decode"))
    received = aiter(stream)
    first = await asyncio.wait_for(anext(received), timeout=10)
    assert first.result is False
    publish(board, 2)
    assert (await asyncio.wait_for(anext(received), timeout=10)).result is True
    # A change of count that keeps the target active is no news for KEDA's 0 <-> 1 logic: the next
    # message is the flip back to inactive, not the 2 -> 4 change.
    publish(board, 4)
    publish(board, 0)
    assert (await asyncio.wait_for(anext(received), timeout=10)).result is False
    stream.cancel()


async def test_the_activity_stream_ends_with_not_found_when_the_autoscaler_is_deleted(
    board: DesiredReplicasBoard, keda: pb_grpc.ExternalScalerAsyncStub
) -> None:
    publish(board, 1)
    received = aiter(keda.StreamIsActive(ref(autoscaler="llama", phase="decode")))
    assert (await asyncio.wait_for(anext(received), timeout=10)).result is True
    board.remove(namespace="serving", autoscaler="llama")
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(anext(received), timeout=10)
    assert ended.value.code() is grpc.StatusCode.NOT_FOUND


async def test_metric_spec_streaming_is_declined_so_keda_polls(keda: pb_grpc.ExternalScalerAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as declined:
        async for _ in keda.StreamMetricSpec(ref(autoscaler="llama", phase="decode")):
            pass
    assert declined.value.code() is grpc.StatusCode.UNIMPLEMENTED
