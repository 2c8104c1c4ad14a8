"""The live loop follows the resources: one created after start is reconciled at once, a spec change runs
its cycle without waiting for the interval, and a deleted one stops being reconciled and published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.core.phases import Phase
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    WallClock,
    add_autoscaler,
    add_pool,
    autoscaler,
    heavy,
    status,
)
from tests.contract.kubernetes.conftest import AUTOSCALERS
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.prometheus_api import FakePrometheus


async def _until(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_resources_created_changed_and_deleted_while_running(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    board: DesiredReplicasBoard,
) -> None:
    add_pool(kube)
    heavy(prom)
    controller = make_controller(own_clock=WallClock(), renew_every_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    await _until(lambda: controller.synced and controller.gate.leading())

    add_autoscaler(kube, autoscaler(controlIntervalSeconds=3600))  # created after start; hourly cycles
    await _until(lambda: status(kube).get("observedGeneration") == 1)

    def more_decode(obj: dict[str, Any]) -> dict[str, Any]:
        spec = autoscaler(controlIntervalSeconds=3600)["spec"]
        spec["phases"]["decode"]["maxReplicas"] = 2
        return {**obj, "spec": spec}

    kube.store.update(AUTOSCALERS, "default", POOL, more_decode)
    await _until(lambda: status(kube).get("observedGeneration") == 2)  # long before the hour is up
    assert status(kube)["phases"]["decode"]["desiredReplicas"] <= 2

    kube.delete(AUTOSCALERS, POOL)
    await _until(lambda: controller.tracked() == [])
    assert board.get(namespace="default", autoscaler=POOL, phase=Phase.DECODE) is None

    stop.set()
    await asyncio.wait_for(task, timeout=10)
