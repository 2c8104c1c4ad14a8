"""What the admission gate adds to a placement when nothing waits: CPU per request, gate and router against
the router alone, over 16 and 64 endpoints, with the profile's limits and with none.

``python benchmarks/admission_overhead.py [--requests N] [--out benchmarks/results/admission_overhead.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from autoscaler.adapters.admission_gate import AdmissionGate
from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.routing.admission import (
    AdmissionQueue,
    AdmissionSettings,
    EndpointLimits,
    limits_from_profile,
)
from autoscaler.routing.interface import RouteRequest
from autoscaler.routing.router import AffinityRouter


def _router(endpoints: int) -> AffinityRouter:
    router = AffinityRouter()
    for i in range(endpoints):  # half prefill, half decode
        phase = Phase.DECODE if i % 2 else Phase.PREFILL
        router.add_endpoint(f"e{i}", phase=phase, kv_capacity_tokens=500_000, now=0.0)
    return router


async def _case(limits: EndpointLimits, endpoints: int, requests: int) -> dict[str, float]:
    router = _router(endpoints)
    queue = AdmissionQueue(AdmissionSettings(), limits)
    gate = AdmissionGate(router, queue, pool="p", registry=CollectorRegistry())
    standard = gate.priority(None)
    batch = [RouteRequest(request_id=i, prompt_tokens=1000, output_tokens=200) for i in range(requests)]
    started = time.perf_counter()
    for request in batch:
        admitted = await gate.place(request, standard)
        router.finished(admitted.placement, now=0.0)
        gate.pump()
    gated = (time.perf_counter() - started) / requests
    started = time.perf_counter()
    for request in batch:
        router.finished(router.place(request, now=0.0), now=0.0)
    alone = (time.perf_counter() - started) / requests
    return {"gate_and_router_us": round(gated * 1e6, 1), "router_alone_us": round(alone * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/admission_overhead.json"))
    args = parser.parse_args()
    if not 100 <= args.requests <= 1_000_000:
        parser.error("--requests must be within 100..1000000")
    profile = load_profile("llama-3.1-8b/h100-tp1")
    limits = limits_from_profile(AdmissionSettings(), profile)
    result = {
        f"{name}, {endpoints} endpoints": asyncio.run(_case(chosen, endpoints, args.requests))
        for name, chosen in (("profile limits", limits), ("no limits", EndpointLimits(None, None)))
        for endpoints in (16, 64)
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
