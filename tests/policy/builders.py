"""Builders for policy tests: observations from a few numbers, settings with test-friendly defaults."""

from __future__ import annotations

import dataclasses
from typing import Any

from autoscaler.config.profiles import load_profile
from autoscaler.core.observation import Observation, PhaseSignals, ReplicaCounts
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.settings import PolicySettings

PROFILE = load_profile("llama-3.1-8b/h100-tp1")
SLO = Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(0.05))


def phase_signals(
    *, rate: float = 20.0, replicas: tuple[int, int, int] = (2, 2, 0), **overrides: Any
) -> PhaseSignals:
    current, ready, starting = replicas
    values: dict[str, Any] = {
        "replicas": ReplicaCounts(current=current, ready=ready, starting=starting),
        "arrival_rate": rate,
        "prompt_tokens_mean": 1_200.0,
        "output_tokens_mean": 250.0,
        "prompt_tokens_cv": 0.5,
        "arrival_cv": 1.0,
        "prefix_hit_rate": 0.0,
        "queue_length": 0.0,
        "kv_usage": 0.3,
        "age_s": 15.0,
    }
    values.update(overrides)
    return PhaseSignals(**values)


def observation(time: float, **phases: PhaseSignals) -> Observation:
    return Observation(pool="pool", time=time, phases={Phase(name): s for name, s in phases.items()})


def make_settings(**overrides: Any) -> PolicySettings:
    base = PolicySettings(
        profile=PROFILE,
        slo=SLO,
        mode=ServingMode.DISAGGREGATED,
        bounds={Phase.PREFILL: ReplicaBounds(1, 32), Phase.DECODE: ReplicaBounds(1, 32)},
    )
    return dataclasses.replace(base, **overrides)
