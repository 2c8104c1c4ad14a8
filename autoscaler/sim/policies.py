"""Policies by name, for scenarios and the CLI: ours and the baselines, constructed from one context.

The baselines are ``policy.baselines``' own registry (names, builders, descriptions); this one adds ours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from autoscaler.core.observation import CounterSource
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.policy import baselines
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.policy.settings import Forecast, PolicySettings
from autoscaler.policy.step import Autoscaler
from autoscaler.profiles.schema import Profile

__all__ = ["NAMES", "PolicyContext", "UnknownPolicy", "build_policy", "describe"]

OURS = "ours"
NAMES = (OURS, *baselines.NAMES)
_OURS_DESCRIPTION = (
    "this project's policy: per phase, the fewest replicas whose modelled TTFT (a queue in front of "
    "prefill) and ITL (decode batch and KV cache) meet the SLO at the load forecast over the replica "
    "start-up time, calibrated by observed latency; up fast, down slowly"
)


class UnknownPolicy(ValueError):
    """A policy name that is not registered."""


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
    rate_window_s: float  # what the rates the policy reads are counted over
    counter_source: CounterSource  # whose request counter the rates are read from
    gpu_budget: int | None


def describe(name: str) -> str:
    """One sentence on what the policy is (an unknown name says so)."""
    if name == OURS:
        return _OURS_DESCRIPTION
    if name in baselines.NAMES:
        return baselines.describe(name)
    return "a policy this version does not know"


def build_policy(name: str, ctx: PolicyContext) -> ScalingPolicy[Any]:
    if name not in NAMES:
        raise UnknownPolicy(f"unknown policy {name!r}; known: {', '.join(NAMES)}")
    bounds = {
        p: ReplicaBounds(minimum=ctx.min_replicas[p], maximum=ctx.max_replicas[p]) for p in ctx.mode.phases
    }
    if name == OURS:
        settings = PolicySettings(
            profile=ctx.profile,
            slo=ctx.slo,
            mode=ctx.mode,
            bounds=bounds,
            control_interval_s=ctx.control_interval_s,
            gpu_budget=ctx.gpu_budget,
            forecast=Forecast(rate_window_s=ctx.rate_window_s),
            counter_source=ctx.counter_source,
        )
        return Autoscaler(settings)
    return baselines.build_baseline(
        name,
        profile=ctx.profile,
        slo=ctx.slo,
        bounds=bounds,
        static_replicas=dict(ctx.initial_replicas),
        gpu_budget=ctx.gpu_budget,
    )
