"""Faults around one cycle: API server 500s, 409s and timeouts; Prometheus down, stale or NaN; a replica
stuck Pending; the resource deleted mid-cycle; invalid specs. The loop keeps going, holds where it must, and
says why in the status and in Events."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from pathlib import Path
from typing import Any

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.workload import OPT_IN_LABEL, OPT_IN_VALUE
from autoscaler.adapters.prometheus import ReaderSettings
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.controller.backoff import Backoff
from autoscaler.controller.loop import Controller
from autoscaler.controller.signals import Values
from autoscaler.core.phases import Phase
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    add_autoscaler,
    add_pool,
    assert_everything_written_is_valid,
    autoscaler,
    condition,
    events,
    heavy,
    idle,
    pods,
    reasons,
    replicas,
    status,
)
from tests.contract.kubernetes.conftest import AUTOSCALERS, ManualClock
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import DEPLOYMENTS
from tests.fakes.prometheus_api import FakePrometheus

DECODE_SCALE = f"/deployments/{POOL}-decode/scale$"


async def _leader(make_controller: ControllerFactory) -> Controller:
    controller = make_controller()
    assert await controller.elect()
    return controller


async def _next_cycle(controller: Controller, clock: ManualClock) -> str:
    clock.advance(15)
    await controller.elect()
    return await controller.reconcile("default", POOL)


async def test_api_server_errors_hold_the_cycle_and_the_next_one_acts(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, clock: ManualClock
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = await _leader(make_controller)
    kube.faults.inject(DECODE_SCALE, status=500, method="GET")

    assert await controller.reconcile("default", POOL) == "held"

    active = condition(kube, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "ApiUnavailable")
    assert "500" in active["message"]
    assert condition(kube, "Ready")["status"] == "True"
    assert "ApiUnavailable" in reasons(kube)
    assert replicas(kube, "decode") == 1

    assert await _next_cycle(controller, clock) == "decided"
    assert replicas(kube, "decode") > 1
    assert condition(kube, "ScalingActive")["status"] == "True"
    assert_everything_written_is_valid(kube)


async def test_a_409_rereads_and_decides_again(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = await _leader(make_controller)
    kube.faults.inject(DECODE_SCALE, status=409, method="PUT")

    assert await controller.reconcile("default", POOL) == "decided"

    writes = kube.requests_to(DECODE_SCALE, method="PUT")
    reads = kube.requests_to(DECODE_SCALE, method="GET")
    assert len(writes) == 2 and len(reads) >= 3  # first read, re-read after the 409, read of the new attempt
    assert writes[1].body["metadata"]["resourceVersion"]  # the second write is conditional too
    assert replicas(kube, "decode") > 1


async def test_a_workload_that_keeps_changing_is_held_with_a_reason(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = await _leader(make_controller)
    kube.faults.inject(DECODE_SCALE, status=409, method="PUT", times=10)

    assert await controller.reconcile("default", POOL) == "held"

    assert condition(kube, "ScalingActive")["reason"] == "ConflictRetriesExhausted"
    assert "ConflictRetriesExhausted" in reasons(kube)


async def test_a_scale_write_that_times_out_holds_and_the_loop_goes_on(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, clock: ManualClock
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = make_controller(request_timeout_s=2.0)
    assert await controller.elect()
    kube.faults.inject(DECODE_SCALE, status=None, method="PUT", delay_s=3.0)

    assert await controller.reconcile("default", POOL) == "held"
    assert "Timeout" in condition(kube, "ScalingActive")["message"]

    # The timed-out write may still land (as on a real server), before or during the next cycle's read:
    # either way that cycle decides from what it reads, re-reading after a 409.
    assert await _next_cycle(controller, clock) == "decided"
    assert condition(kube, "ScalingActive")["status"] == "True"


async def test_prometheus_down_holds_the_replicas_and_says_so(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    board: DesiredReplicasBoard,
) -> None:
    add_pool(kube, decode=3)
    add_autoscaler(kube, autoscaler())
    idle(prom)
    prom.fail_status = 503
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "decided"

    signals = condition(kube, "SignalsHealthy")
    assert (signals["status"], signals["reason"]) == ("False", "PrometheusUnavailable")
    assert condition(kube, "ScalingActive")["status"] == "False"
    assert replicas(kube, "decode") == 3  # never scale down on missing data
    published = board.get(namespace="default", autoscaler=POOL, phase=Phase.DECODE)
    assert published is not None and published.desired == 3 and published.reason == "HoldMissingSignals"
    assert "PrometheusUnavailable" in reasons(kube)

    await prom.stop()  # not even listening any more
    assert await controller.reconcile("default", POOL) == "decided"
    assert condition(kube, "SignalsHealthy")["reason"] == "PrometheusUnavailable"
    assert replicas(kube, "decode") == 3
    assert_everything_written_is_valid(kube)


async def test_stale_signals_hold(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube, decode=3)
    add_autoscaler(kube, autoscaler())
    idle(prom)
    prom.stale_s = 600
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "decided"

    assert condition(kube, "SignalsHealthy")["reason"] == "HoldStaleSignals"
    assert status(kube)["phases"]["decode"]["reason"] == "HoldStaleSignals"
    assert replicas(kube, "decode") == 3
    assert "HoldStaleSignals" in reasons(kube)


async def test_nan_metrics_hold(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube, decode=3)
    add_autoscaler(kube, autoscaler())
    idle(prom)
    prom.series[(POOL, "decode")]["arrival_rate"] = math.nan
    prom.series[(POOL, "prefill")]["kv_usage"] = math.nan
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "decided"

    assert status(kube)["phases"]["decode"]["reason"] == "HoldMissingSignals"
    assert status(kube)["phases"]["prefill"]["reason"] == "HoldMissingSignals"
    assert condition(kube, "SignalsHealthy")["status"] == "False"
    assert replicas(kube, "decode") == 3
    assert_everything_written_is_valid(kube)


async def test_a_replica_stuck_pending_is_reported_and_removed_first(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, clock: ManualClock
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    kube.workloads.start_pending = True  # no GPU left: new pods stay unschedulable
    heavy(prom)
    controller = await _leader(make_controller)
    assert await controller.reconcile("default", POOL) == "decided"
    grown = replicas(kube, "decode")
    assert grown > 1

    clock.advance(300)  # over twice the profile's 120 s start-up
    await controller.elect()
    assert await controller.reconcile("default", POOL) == "decided"  # the loop is not frozen
    decode = status(kube)["phases"]["decode"]
    assert (decode["readyReplicas"], decode["pendingReplicas"]) == (1, grown - 1)
    assert "ReplicasPending" in reasons(kube)

    idle(prom)
    assert await _next_cycle(controller, clock) == "decided"
    assert replicas(kube, "decode") == 1  # no drain wait: Pending pods serve nothing
    remaining = pods(kube, "decode")
    assert [p["status"]["phase"] for p in remaining] == ["Running"]
    assert_everything_written_is_valid(kube)


async def test_a_resource_deleted_mid_cycle_is_forgotten_without_a_crash(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    board: DesiredReplicasBoard,
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = await _leader(make_controller)
    await controller.sync()
    kube.faults.inject(DECODE_SCALE, status=None, method="GET", delay_s=0.5)

    async def delete_soon() -> None:
        await asyncio.sleep(0.2)
        kube.delete(AUTOSCALERS, POOL)

    outcome, _ = await asyncio.gather(controller.reconcile("default", POOL), delete_soon())

    assert outcome == "gone"
    assert board.get(namespace="default", autoscaler=POOL, phase=Phase.DECODE) is None
    assert controller.reconciler.memory == {}
    assert await controller.reconcile("default", POOL) == "gone"


async def test_an_invalid_spec_is_reported_until_fixed(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, clock: ManualClock
) -> None:
    add_pool(kube)
    broken = autoscaler()
    broken["spec"]["phases"]["decode"]["minReplicas"] = 9  # above max: CEL rejects it on a real API server
    add_autoscaler(kube, broken)
    heavy(prom)
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "held"

    ready = condition(kube, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "minReplicas must not exceed maxReplicas" in ready["message"]
    assert "InvalidSpec" in reasons(kube)
    assert kube.requests_to("/scale$", method="PUT") == []

    def fix(obj: dict[str, object]) -> dict[str, object]:
        spec = autoscaler()["spec"]
        return {**obj, "spec": spec}

    kube.store.update(AUTOSCALERS, "default", POOL, fix)
    assert await _next_cycle(controller, clock) == "decided"
    ready = condition(kube, "Ready")
    assert (ready["status"], ready["observedGeneration"]) == ("True", 2)
    assert status(kube)["observedGeneration"] == 2
    assert_everything_written_is_valid(kube)


async def test_a_missing_target_or_profile_is_reported(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_autoscaler(kube, autoscaler())  # no Deployments
    heavy(prom)
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "held"
    assert condition(kube, "Ready")["reason"] == "TargetNotFound"

    def unknown_profile(obj: dict[str, object]) -> dict[str, object]:
        return {**obj, "spec": autoscaler(profile={"name": "no-such/model"})["spec"]}

    kube.store.update(AUTOSCALERS, "default", POOL, unknown_profile)
    assert await controller.reconcile("default", POOL) == "held"
    ready = condition(kube, "Ready")
    assert ready["reason"] == "InvalidSpec" and "no such profile" in ready["message"]
    assert_everything_written_is_valid(kube)


class BrokenSignals:
    """A reader with a bug: it raises what no adapter promises to raise."""

    async def read(self, settings: ReaderSettings, *, now: float) -> Values:
        raise ZeroDivisionError("a bug")


async def test_a_bug_in_a_cycle_costs_that_cycle_only(
    kube: FakeKubeApiServer, make_controller: ControllerFactory
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    controller = make_controller(signals=BrokenSignals())
    assert await controller.elect()

    assert await controller.reconcile("default", POOL) == "error"
    assert await controller.reconcile("default", POOL) == "error"

    labels = {"namespace": "default", "autoscaler": POOL, "outcome": "error"}
    assert controller.metrics.registry.get_sample_value("autoscaler_controller_cycles_total", labels) == 2


async def test_a_write_that_succeeded_keeps_its_event_when_a_later_one_fails(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = await _leader(make_controller)
    kube.faults.inject(DECODE_SCALE, status=500, method="PUT")

    assert await controller.reconcile("default", POOL) == "held"

    assert replicas(kube, "prefill") > 1 and replicas(kube, "decode") == 1
    assert reasons(kube).count("ScaledUp") == 1  # prefill's, emitted when it was written
    assert condition(kube, "ScalingActive")["reason"] == "ApiUnavailable"


async def test_a_profile_path_in_a_stored_resource_is_held_unread(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, tmp_path: Path
) -> None:
    """A resource stored before the CRD had its pattern: the code refuses the path and quotes no file."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    add_pool(kube)
    add_autoscaler(kube, autoscaler(profile={"name": str(secret)}))
    heavy(prom)
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "held"

    ready = condition(kube, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "profile" in ready["message"] and "hunter2" not in ready["message"]
    assert all("hunter2" not in event.get("note", "") for event in events(kube))


async def test_a_dead_api_server_is_relisted_after_growing_jittered_pauses(
    make_controller: ControllerFactory,
) -> None:
    controller = make_controller(watch_backoff=Backoff(base_s=0.05, cap_s=0.4))
    attempts: list[float] = []

    async def unreachable() -> str:
        attempts.append(time.monotonic())
        raise errors.KubernetesError(
            "list inferenceautoscalers", status=None, reason="ConnectionError", message="refused"
        )

    controller.sync = unreachable  # type: ignore[method-assign]
    stop = asyncio.Event()
    watching = asyncio.create_task(controller._watch(stop))
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.wait_for(watching, timeout=5)

    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert 5 <= len(attempts) <= 12  # a flat 0.05 s would have made about 40
    assert gaps[0] < 0.1 and all(0.2 - 0.02 <= gap <= 0.4 + 0.1 for gap in gaps[4:])


async def test_a_target_without_the_opt_in_label_is_never_written(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube, decode=2)
    kube.store.update(DEPLOYMENTS, "default", f"{POOL}-decode", _without_opt_in)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    controller = await _leader(make_controller)

    assert await controller.reconcile("default", POOL) == "held"

    ready = condition(kube, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TargetNotOptedIn")
    assert f"{OPT_IN_LABEL}={OPT_IN_VALUE}" in ready["message"]
    assert kube.requests_to("/scale$", method="PUT") == []
    assert kube.requests_to("/pods/", method="PATCH") == []
    assert replicas(kube, "decode") == 2
    assert_everything_written_is_valid(kube)


def _without_opt_in(obj: dict[str, Any]) -> dict[str, Any]:
    labels = {k: v for k, v in obj["metadata"]["labels"].items() if k != OPT_IN_LABEL}
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}
