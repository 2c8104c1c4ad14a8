"""A what-if scenario as YAML states it: workload, profile, SLO, cluster, control loop and policies.

Parsed once here (pydantic), then handed down as typed values. Relative paths (trace files) resolve against
the scenario file's folder. A minimal scenario::

    name: mooncake
    profile: llama-3.1-8b/h100-tp1
    mode: disaggregated
    slo: {ttft_s: 2.0, itl_s: 0.05, percentile: 90}
    workload: {kind: trace, path: ../../shared/traces/conversation_trace.jsonl}
    cluster: {initial_replicas: {prefill: 2, decode: 1}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pydantic
import yaml
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from autoscaler.config import yaml_errors
from autoscaler.core.observation import CounterSource
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.policy.actuation import DEFAULT_DRAIN_TIMEOUT_S
from autoscaler.sim import policies
from autoscaler.sim.workloads.spec import WorkloadSpec

__all__ = ["Scenario", "ScenarioError", "default_scenario_path", "load_scenario", "with_overrides"]


class ScenarioError(ValueError):
    """A scenario file that is missing, unreadable or invalid (the message names the file and field)."""


class _Spec(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class SloSpec(_Spec):
    ttft_s: PositiveFloat = 2.0
    itl_s: PositiveFloat = 0.05
    percentile: Annotated[float, Field(gt=0, lt=100)] = 90.0

    def build(self) -> Slo:
        return Slo(
            ttft=LatencyTarget(self.ttft_s, self.percentile), itl=LatencyTarget(self.itl_s, self.percentile)
        )


class ClusterSpec(_Spec):
    initial_replicas: dict[Phase, NonNegativeInt]  # ready at t = 0; also the static baseline's count
    min_replicas: dict[Phase, NonNegativeInt] = {}  # default 1 per phase
    max_replicas: dict[Phase, PositiveInt] = {}  # default 32 per phase
    gpu_budget: PositiveInt | None = None  # GPUs shared by the pool's phases (Dynamo's max_gpu_budget)
    pending_delay_s: NonNegativeFloat = 0.0  # before the profile's start-up delay (node provisioning)
    max_model_len: Annotated[int, Field(ge=2)] | None = None  # vLLM's --max-model-len; None: the profile's
    # A scale-down's victims go after this even if still serving, their requests failed (the resource's
    # behavior.drainTimeoutSeconds)
    drain_timeout_s: Annotated[float, Field(ge=0, le=3600)] = DEFAULT_DRAIN_TIMEOUT_S

    def minimum(self, phase: Phase) -> int:
        return self.min_replicas.get(phase, 1)

    def maximum(self, phase: Phase) -> int:
        return self.max_replicas.get(phase, 32)


class ControlSpec(_Spec):
    interval_s: PositiveFloat = 30.0
    scrape_interval_s: PositiveFloat = 15.0
    rate_window_s: PositiveFloat = 60.0
    delay_s: NonNegativeFloat = 15.0
    router_metrics_interval_s: PositiveFloat = 2.0  # how often the router sees engine queue and KV use
    signal_source: CounterSource = "vllm"  # request and prefix counters, as spec.metrics.source


class Scenario(_Spec):
    name: str = "scenario"
    description: str = ""
    seed: int = 0
    profile: str = "llama-3.1-8b/h100-tp1"
    mode: ServingMode = ServingMode.DISAGGREGATED
    slo: SloSpec = SloSpec()
    workload: WorkloadSpec
    cluster: ClusterSpec
    control: ControlSpec = ControlSpec()
    router: Literal["affinity", "least-loaded"] = (
        "affinity"  # placement: the cache-affinity router, or load only
    )
    policies: tuple[str, ...] = policies.NAMES
    oracle_window_s: PositiveFloat = 60.0
    drain_s: PositiveFloat = 900.0  # after the last arrival, how long in-flight requests may still finish
    client_timeout_s: PositiveFloat = 300.0  # a client gives up on an unfinished request after this: a miss
    # The router's admission queue (``autoscaler.routing.admission``): a request waits in the router while
    # every endpoint is at the profile's limits, and at zero replicas until the pool wakes; needs "affinity".
    router_queue: bool = False
    router_queue_ttl_s: PositiveFloat | None = None  # a request waiting longer is shed (429); None: no TTL

    @pydantic.model_validator(mode="after")
    def _phases_match_mode(self) -> Scenario:
        phases = set(self.mode.phases)
        for field in ("initial_replicas", "min_replicas", "max_replicas"):
            given = set(getattr(self.cluster, field))
            if (field == "initial_replicas" and given != phases) or not given <= phases:
                names = ", ".join(p.value for p in self.mode.phases)
                raise ValueError(f"cluster.{field} must name the phases of a {self.mode.value} pool: {names}")
        for phase in self.mode.phases:
            if self.cluster.minimum(phase) > self.cluster.maximum(phase):
                raise ValueError(f"cluster: min_replicas of {phase.value} exceeds max_replicas")
        if self.router_queue and self.router != "affinity":
            raise ValueError("router_queue needs router: affinity")
        unknown = [name for name in self.policies if name not in policies.NAMES]
        if unknown:
            raise ValueError(f"unknown policies {unknown}; known: {', '.join(policies.NAMES)}")
        return self


def default_scenario_path() -> Path:
    """The shipped default scenario: the checkout's ``simulations/default.yaml``."""
    return Path(__file__).resolve().parents[2] / "simulations" / "default.yaml"


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {yaml_errors.describe(exc)}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a YAML mapping, got {type(data).__name__}")
    return _validate(data, origin=str(path))


def with_overrides(
    scenario: Scenario, *, policies: tuple[str, ...] | None = None, seed: int | None = None
) -> Scenario:
    """``scenario`` with the command line's choices of policies and seed (validated like the file)."""
    updates: dict[str, object] = {}
    if policies is not None:
        updates["policies"] = policies
    if seed is not None:
        updates["seed"] = seed
    if not updates:
        return scenario
    return _validate({**scenario.model_dump(), **updates}, origin="command line")


def _validate(data: dict[str, object], *, origin: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ScenarioError(f"{origin}: invalid scenario: {problems}") from exc
