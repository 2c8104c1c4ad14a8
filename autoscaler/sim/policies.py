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

__all__ = ["NAMES", "PolicyContext", "UnknownPolicy", "build_policy"]


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


_REGISTRY: dict[str, Callable[[PolicyContext], ScalingPolicy[Any]]] = {
    "ours": _ours,
    "static": _baseline("static"),
    "keda": _baseline("keda"),
    "wva": _baseline("wva"),
    "dynamo": _baseline("dynamo"),
}

NAMES = tuple(_REGISTRY)


def build_policy(name: str, ctx: PolicyContext) -> ScalingPolicy[Any]:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownPolicy(f"unknown policy {name!r}; known: {', '.join(NAMES)}") from None
    try:
        return factory(ctx)
    except ImportError as exc:
        raise UnknownPolicy(f"policy {name!r} is not available: {exc}") from exc
