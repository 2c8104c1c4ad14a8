"""The published scaling policies ours is compared against, behind the same ``ScalingPolicy`` interface.

One module per baseline, each following its source in ``../shared/reference/`` (named in its docstring),
known weaknesses included: ``static``, ``keda`` (vLLM production-stack), ``wva`` (llm-d Workload Variant
Autoscaler, saturation V2) and ``dynamo`` (NVIDIA Dynamo SLA planner, throughput mode). ``hpa`` is the
Kubernetes HPA that KEDA and WVA act through. ``build_baseline`` constructs any of them by name for the
simulator and the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.policy.baselines.common import ReplicaBounds
from autoscaler.policy.baselines.dynamo import LEGACY_MAX_GPU_BUDGET, DynamoPolicy, DynamoSettings
from autoscaler.policy.baselines.keda import KedaPolicy, KedaSettings
from autoscaler.policy.baselines.static import StaticPolicy, StaticSettings
from autoscaler.policy.baselines.wva import WvaPolicy, WvaSettings
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.profiles.schema import Profile

NAMES = ("static", "keda", "wva", "dynamo")


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
    if name == "static":
        replicas = static_replicas or {phase: b.maximum for phase, b in bounds.items()}
        return StaticPolicy(StaticSettings(replicas=replicas))
    if name == "keda":
        return KedaPolicy(KedaSettings(bounds=bounds))
    if name == "wva":
        return WvaPolicy(profile=profile, settings=WvaSettings(bounds=bounds))
    if name == "dynamo":
        return DynamoPolicy(
            profile=profile, slo=slo, settings=DynamoSettings(bounds=bounds, max_gpu_budget=gpu_budget)
        )
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(NAMES)}")


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
]
