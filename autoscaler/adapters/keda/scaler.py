"""KEDA external scaler over gRPC: our desired replicas as the metric KEDA's HPA divides by 1.

KEDA calls the ``externalscaler.ExternalScaler`` service (``externalscaler.proto`` next to this file) with a
``ScaledObjectRef`` whose ``scalerMetadata`` is the trigger's ``metadata`` map, verbatim. We read:

- ``autoscaler`` (required): the name of our autoscaler custom resource;
- ``phase`` (required): ``prefill``, ``decode`` or ``aggregated``, the replica set this ScaledObject scales;
- ``namespace`` (optional): where that autoscaler lives; the ScaledObject's own namespace by default;
- ``metricName`` (optional): the metric's name in KEDA's HPA; ``autoscaler-desired-replicas-<phase>``.

The answers come from the desired-replicas board (``autoscaler.adapters.publishing``):

- ``IsActive``: desired > 0 (KEDA handles 0 <-> 1 itself from this);
- ``StreamIsActive`` (trigger ``type: external-push``): the current activity at once, then each time it flips;
- ``GetMetricSpec``: one metric, target 1 (``targetSizeFloat`` and the deprecated ``targetSize``); answered
  before the first decision too, so KEDA can create its HPA while the controller starts;
- ``GetMetrics``: desired replicas (``metricValueFloat`` and the deprecated ``metricValue``);
- ``StreamMetricSpec``: UNIMPLEMENTED, which KEDA takes as "poll GetMetricSpec".

Missing metadata is INVALID_ARGUMENT; an unknown phase, or an autoscaler with no published decision for that
phase, is NOT_FOUND with a message that names what was asked and what the board holds.

Why ``AverageValue``: the HPA KEDA creates computes, for an ``AverageValue`` target,
``desired = ceil(metric / target)`` = our number (unless ``|metric / (target * current) - 1|`` is within the
HPA tolerance, 0.1 by default, when it keeps the current count). For a ``Value`` target it computes
``ceil(current * metric / target)``: our number multiplied by the current replicas. Wire it like this::

    apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    metadata: {name: llama-decode, namespace: serving}
    spec:
      scaleTargetRef: {name: llama-decode}
      minReplicaCount: 1
      maxReplicaCount: 32
      triggers:
        - type: external            # or external-push, to be told at once when activity flips
          metricType: AverageValue  # the default; never Value (see above)
          metadata:
            scalerAddress: inference-autoscaler-keda.autoscaler-system:9443
            autoscaler: llama       # our Autoscaler resource
            phase: decode

Without the gRPC scaler, the same number is the ``autoscaler_desired_replicas{namespace, autoscaler, phase}``
gauge on ``/metrics`` (``autoscaler.adapters.metrics_exporter``), for KEDA's Prometheus trigger
(``query: max(autoscaler_desired_replicas{autoscaler="llama", phase="decode"})``, ``threshold: "1"``,
``metricType: AverageValue``) or a prometheus-adapter external rule with an HPA ``AverageValue`` target "1".
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import grpc.aio

from autoscaler.adapters.keda import externalscaler_pb2 as pb
from autoscaler.adapters.keda import externalscaler_pb2_grpc as pb_grpc
from autoscaler.adapters.publishing import DesiredReplicasBoard, Published
from autoscaler.core.phases import Phase

Context = grpc.aio.ServicerContext[Any, Any]
TARGET = 1  # replicas per unit of metric: HPA's ceil(metric / 1) is our desired count


@dataclasses.dataclass(frozen=True, slots=True)
class Trigger:
    """What one ScaledObject trigger asks for, from its metadata."""

    namespace: str
    autoscaler: str
    phase: Phase
    metric_name: str


class KedaExternalScaler(pb_grpc.ExternalScalerServicer):
    """Answers KEDA from the board; holds no state of its own."""

    def __init__(self, board: DesiredReplicasBoard) -> None:
        self._board = board

    async def IsActive(self, request: pb.ScaledObjectRef, context: Context) -> pb.IsActiveResponse:
        entry = await self._published(await _trigger(request, context), context)
        return pb.IsActiveResponse(result=entry.desired > 0)

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: Context
    ) -> AsyncIterator[pb.IsActiveResponse]:
        trigger = await _trigger(request, context)
        version = self._board.version
        sent: bool | None = None
        while True:
            active = (await self._published(trigger, context)).desired > 0
            if active != sent:
                yield pb.IsActiveResponse(result=active)
                sent = active
            version = await self._board.changed(version)

    async def GetMetricSpec(self, request: pb.ScaledObjectRef, context: Context) -> pb.GetMetricSpecResponse:
        trigger = await _trigger(request, context)
        spec = pb.MetricSpec(metricName=trigger.metric_name, targetSize=TARGET, targetSizeFloat=float(TARGET))
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    async def GetMetrics(self, request: pb.GetMetricsRequest, context: Context) -> pb.GetMetricsResponse:
        trigger = await _trigger(request.scaledObjectRef, context)
        entry = await self._published(trigger, context)
        value = pb.MetricValue(
            metricName=request.metricName or trigger.metric_name,
            metricValue=entry.desired,
            metricValueFloat=float(entry.desired),
        )
        return pb.GetMetricsResponse(metricValues=[value])

    async def StreamMetricSpec(
        self, request: pb.ScaledObjectRef, context: Context
    ) -> AsyncIterator[pb.GetMetricSpecResponse]:
        """Our spec never changes, so KEDA may as well poll GetMetricSpec: UNIMPLEMENTED tells it to."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the metric spec is static; poll GetMetricSpec")
        yield pb.GetMetricSpecResponse()  # unreachable: makes this an async generator, as gRPC expects

    async def _published(self, trigger: Trigger, context: Context) -> Published:
        entry = self._board.get(
            namespace=trigger.namespace, autoscaler=trigger.autoscaler, phase=trigger.phase
        )
        if entry is None:
            known = sorted(f"{k.namespace}/{k.autoscaler}/{k.phase.value}" for k in self._board.snapshot())
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no decision published for autoscaler {trigger.namespace}/{trigger.autoscaler} phase "
                f"{trigger.phase.value}; published: {', '.join(known) or 'none yet'}",
            )
        return entry


async def _trigger(ref: pb.ScaledObjectRef, context: Context) -> Trigger:
    metadata: Mapping[str, str] = ref.scalerMetadata
    missing = [key for key in ("autoscaler", "phase") if not metadata.get(key)]
    if missing:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"ScaledObject {ref.namespace}/{ref.name}: trigger metadata lacks {' and '.join(missing)}",
        )
    try:
        phase = Phase(metadata["phase"])
    except ValueError:
        await context.abort(
            grpc.StatusCode.NOT_FOUND,
            f"unknown phase {metadata['phase']!r}; one of {', '.join(p.value for p in Phase)}",
        )
    return Trigger(
        namespace=metadata.get("namespace") or ref.namespace,
        autoscaler=metadata["autoscaler"],
        phase=phase,
        metric_name=metadata.get("metricName") or f"autoscaler-desired-replicas-{phase.value}",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ServingScaler:
    server: grpc.aio.Server
    port: int  # the bound port (the one asked for, or the one the OS chose for port 0)


async def serve_keda(board: DesiredReplicasBoard, *, host: str, port: int) -> ServingScaler:
    """Start the scaler on ``host:port`` (plaintext, in the running loop); stop it with ``server.stop``."""
    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(KedaExternalScaler(board), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return ServingScaler(server=server, port=bound)
