"""How long one control cycle takes, and how many requests it makes, against loopback fakes.

One InferenceAutoscaler (prefill 2, decode 4 Deployments under heavy load) is reconciled repeatedly by a
leading controller through the official client over real HTTP to the fake API server, with signals from the
fake Prometheus API. It measures the controller's own overhead (reading, the policy step, status and Event
writes), not a real API server's latency.

    python benchmarks/controller_cycle.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from kubernetes.aio import client

from autoscaler.adapters.prometheus_signals import PrometheusSignals
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.cli.controller import build_controller
from autoscaler.controller.loop import ControllerSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plain fakes under tests/fakes/
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.prometheus_api import FakePrometheus
from tests.fakes.serving import (
    AUTOSCALERS,
    LEADER_WORKER_SETS,
    POOL,
    ManualClock,
    add_autoscaler,
    add_pool,
    autoscaler,
    heavy,
)


async def measure(cycles: int) -> dict[str, float]:
    with FakeKubeApiServer(custom_types=[LEADER_WORKER_SETS, AUTOSCALERS]) as kube:
        prom = await FakePrometheus().start()
        add_pool(kube, prefill=2, decode=4)
        add_autoscaler(kube, autoscaler(max_replicas=64))
        heavy(prom)
        clock = ManualClock(start=float(int(time.time())))
        settings = ControllerSettings(
            identity="bench", lease_namespace="default", namespace="default", lease_duration_s=10**6
        )
        async with client.ApiClient(client.Configuration(host=kube.url)) as api:
            controller = build_controller(
                api,
                settings=settings,
                signals=PrometheusSignals(prom.url),
                board=DesiredReplicasBoard(),
                clock=clock,
            )
            assert await controller.elect()
            before = len(kube.requests)
            times = []
            for _ in range(cycles):
                clock.advance(30)
                started = time.perf_counter()
                outcome = await controller.reconcile("default", POOL)
                times.append(time.perf_counter() - started)
                assert outcome == "decided", outcome
            requests = (len(kube.requests) - before) / cycles
        queries = prom.queries / cycles
        await prom.stop()
    ordered = sorted(times)
    return {
        "cycles": cycles,
        "median_ms": 1000 * statistics.median(times),
        "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
        "api_requests_per_cycle": requests,
        "promql_queries_per_cycle": queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 cycles instead of 100")
    parser.add_argument("--out", default="controller_cycle.json", help="where to write the JSON result")
    args = parser.parse_args()
    result = asyncio.run(measure(20 if args.quick else 100))
    for key, value in result.items():
        print(f"{key:<26} {value:10.1f}")
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
