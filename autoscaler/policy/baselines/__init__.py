"""The published scaling policies ours is compared against, behind the same ``ScalingPolicy`` interface.

One module per baseline, each following its source in ``../shared/reference/`` (named in its docstring),
known weaknesses included: ``static``, ``keda`` (vLLM production-stack), ``wva`` (llm-d Workload Variant
Autoscaler, saturation V2) and ``dynamo`` (NVIDIA Dynamo SLA planner, throughput mode). ``hpa`` is the
Kubernetes HPA that KEDA and WVA act through. ``build_baseline`` constructs any of them by name and
``describe`` says what each is: the one registry of baselines, which the simulator's (``sim.policies``)
extends with ours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.policy.baselines.dynamo import LEGACY_MAX_GPU_BUDGET, DynamoPolicy, DynamoSettings
from autoscaler.policy.baselines.keda import KedaPolicy, KedaSettings
from autoscaler.policy.baselines.static import StaticPolicy, StaticSettings
from autoscaler.policy.baselines.wva import WvaPolicy, WvaSettings
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.profiles.schema import Profile


@dataclasses.dataclass(frozen=True, slots=True)
class _Inputs:
    profile: Profile
    slo: Slo
    bounds: Mapping[Phase, ReplicaBounds]
    static_replicas: Mapping[Phase, int] | None
    gpu_budget: int | None


def _static(i: _Inputs) -> ScalingPolicy[Any]:
    replicas = i.static_replicas or {phase: b.maximum for phase, b in i.bounds.items()}
    return StaticPolicy(StaticSettings(replicas=replicas))


def _keda(i: _Inputs) -> ScalingPolicy[Any]:
    return KedaPolicy(KedaSettings(bounds=i.bounds))


def _wva(i: _Inputs) -> ScalingPolicy[Any]:
    return WvaPolicy(profile=i.profile, settings=WvaSettings(bounds=i.bounds))


def _dynamo(i: _Inputs) -> ScalingPolicy[Any]:
    settings = DynamoSettings(bounds=i.bounds, max_gpu_budget=i.gpu_budget)
    return DynamoPolicy(profile=i.profile, slo=i.slo, settings=settings)


@dataclasses.dataclass(frozen=True, slots=True)
class _Baseline:
    build: Callable[[_Inputs], ScalingPolicy[Any]]
    description: str  # what the baseline is, in words, for the what-if report's reader


_BASELINES: dict[str, _Baseline] = {
    "static": _Baseline(
        _static, "no autoscaler: each phase keeps the scenario's initial replicas whatever the load"
    ),
    "keda": _Baseline(
        _keda,
        "KEDA as vLLM's production-stack ships it: the HPA keeps about 5 waiting requests per replica "
        "(vllm:num_requests_waiting), so it grows only once requests already queue",
    ),
    "wva": _Baseline(
        _wva,
        "llm-d's Workload Variant Autoscaler: adds replicas when the tokens in use and queued pass 85 % of "
        "the replicas' token capacity, removes them below 70 %, through an HPA (one down per minute)",
    ),
    "dynamo": _Baseline(
        _dynamo,
        "NVIDIA Dynamo's SLA planner in throughput mode: every 180 s, the observed rate times the tokens "
        "per request over the profiled throughput per replica at the SLO, corrected by observed latency",
    ),
}

NAMES = tuple(_BASELINES)


def describe(name: str) -> str:
    """One sentence on what the baseline called ``name`` is; raises ``KeyError`` for an unknown name."""
    return _BASELINES[name].description


def build_baseline(
    name: str,
    *,
    profile: Profile,
    slo: Slo,
    bounds: Mapping[Phase, ReplicaBounds],
    static_replicas: Mapping[Phase, int] | None = None,
    gpu_budget: int | None = LEGACY_MAX_GPU_BUDGET,
) -> ScalingPolicy[Any]:
    """The baseline called ``name`` with its published defaults.

    ``bounds`` are min/max replicas per phase (the phases of the pool it will see). ``static_replicas`` is
    used by ``static`` (default: each phase's maximum, i.e. provisioned for the peak it may reach).
    ``gpu_budget`` is Dynamo's ``max_gpu_budget`` (its published default is 8 GPUs; pass the budget the
    compared policies get, or ``None`` for none); the other baselines have no budget of their own.
    """
    baseline = _BASELINES.get(name)
    if baseline is None:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(NAMES)}")
    inputs = _Inputs(
        profile=profile, slo=slo, bounds=bounds, static_replicas=static_replicas, gpu_budget=gpu_budget
    )
    return baseline.build(inputs)


__all__ = [
    "NAMES",
    "DynamoPolicy",
    "DynamoSettings",
    "KedaPolicy",
    "KedaSettings",
    "ReplicaBounds",
    "StaticPolicy",
    "StaticSettings",
    "WvaPolicy",
    "WvaSettings",
    "build_baseline",
    "describe",
]
