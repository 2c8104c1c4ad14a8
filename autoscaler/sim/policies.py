"""Policies by name, for scenarios and the CLI: ours and the baselines, constructed from one context.

Imports are lazy so that a policy module that is missing or broken fails with a clear message naming the
policy, and only when that policy is asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.profiles.schema import Profile

__all__ = ["NAMES", "PolicyContext", "UnknownPolicy", "build_policy", "describe"]


class UnknownPolicy(ValueError):
    """A policy name that is not registered, or whose module cannot be imported."""


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyContext:
    """What any policy may need to be built for one pool of a scenario."""

    profile: Profile
    slo: Slo
    mode: ServingMode
    min_replicas: Mapping[Phase, int]
    max_replicas: Mapping[Phase, int]
    initial_replicas: Mapping[Phase, int]  # also the static baseline's fixed count
    control_interval_s: float
    gpu_budget: int | None


def _ours(ctx: PolicyContext) -> ScalingPolicy[Any]:
    settings_mod = importlib.import_module("autoscaler.policy.settings")
    step_mod = importlib.import_module("autoscaler.policy.step")
    bounds = {
        p: settings_mod.Bounds(minimum=ctx.min_replicas[p], maximum=ctx.max_replicas[p])
        for p in ctx.mode.phases
    }
    settings = settings_mod.PolicySettings(
        profile=ctx.profile,
        slo=ctx.slo,
        mode=ctx.mode,
        bounds=bounds,
        control_interval_s=ctx.control_interval_s,
        gpu_budget=ctx.gpu_budget,
    )
    policy: ScalingPolicy[Any] = step_mod.Autoscaler(settings)
    return policy


def _baseline(name: str) -> Callable[[PolicyContext], ScalingPolicy[Any]]:
    def build(ctx: PolicyContext) -> ScalingPolicy[Any]:
        baselines = importlib.import_module("autoscaler.policy.baselines")
        bounds = {
            p: baselines.ReplicaBounds(minimum=ctx.min_replicas[p], maximum=ctx.max_replicas[p])
            for p in ctx.mode.phases
        }
        policy: ScalingPolicy[Any] = baselines.build_baseline(
            name,
            profile=ctx.profile,
            slo=ctx.slo,
            bounds=bounds,
            static_replicas=dict(ctx.initial_replicas),
            gpu_budget=ctx.gpu_budget,
        )
        return policy

    return build


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    build: Callable[[PolicyContext], ScalingPolicy[Any]]
    description: str  # what the policy is, in words, for the report's reader


_REGISTRY: dict[str, _Entry] = {
    "ours": _Entry(
        _ours,
        "this project's policy: per phase, the fewest replicas whose modelled TTFT (a queue in front of "
        "prefill) and ITL (decode batch and KV cache) meet the SLO at the load forecast over the replica "
        "start-up time, calibrated by observed latency; up fast, down slowly",
    ),
    "static": _Entry(
        _baseline("static"),
        "no autoscaler: each phase keeps the scenario's initial replicas whatever the load",
    ),
    "keda": _Entry(
        _baseline("keda"),
        "KEDA as vLLM's production-stack ships it: the HPA keeps about 5 waiting requests per replica "
        "(vllm:num_requests_waiting), so it grows only once requests already queue",
    ),
    "wva": _Entry(
        _baseline("wva"),
        "llm-d's Workload Variant Autoscaler: adds replicas when the tokens in use and queued pass 85 % of "
        "the replicas' token capacity, removes them below 70 %, through an HPA (one down per minute)",
    ),
    "dynamo": _Entry(
        _baseline("dynamo"),
        "NVIDIA Dynamo's SLA planner in throughput mode: every 180 s, the observed rate times the tokens "
        "per request over the profiled throughput per replica at the SLO, corrected by observed latency",
    ),
}

NAMES = tuple(_REGISTRY)


def describe(name: str) -> str:
    """One sentence on what the policy is (an unknown name says so)."""
    entry = _REGISTRY.get(name)
    return entry.description if entry is not None else "a policy this version does not know"


def build_policy(name: str, ctx: PolicyContext) -> ScalingPolicy[Any]:
    try:
        factory = _REGISTRY[name].build
    except KeyError:
        raise UnknownPolicy(f"unknown policy {name!r}; known: {', '.join(NAMES)}") from None
    try:
        return factory(ctx)
    except ImportError as exc:
        raise UnknownPolicy(f"policy {name!r} is not available: {exc}") from exc
