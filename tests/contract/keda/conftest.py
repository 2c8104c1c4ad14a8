"""A real gRPC server (grpc.aio) on 127.0.0.1 serving the KEDA external scaler, and KEDA's side as a stub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import pytest

from autoscaler.adapters.keda import externalscaler_pb2_grpc as pb_grpc
from autoscaler.adapters.keda.scaler import serve_keda
from autoscaler.adapters.publishing import DesiredReplicasBoard


@pytest.fixture
def board() -> DesiredReplicasBoard:
    return DesiredReplicasBoard(wall_clock=lambda: 1_700_000_000.0)


@pytest.fixture
async def keda(board: DesiredReplicasBoard) -> AsyncIterator[pb_grpc.ExternalScalerAsyncStub]:
    """What KEDA's operator holds: a client of the scaler at its ``scalerAddress``."""
    serving = await serve_keda(board, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{serving.port}")
    try:
        yield pb_grpc.ExternalScalerStub(channel)
    finally:
        await channel.close()
        await serving.server.stop(grace=None)
