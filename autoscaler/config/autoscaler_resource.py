"""The ``InferenceAutoscaler`` custom resource, parsed once at the controller's edge into typed settings.

The CRD (``charts/inference-autoscaler/crds/inferenceautoscalers.yaml``) rejects what its schema can state at
admission; this model states the same rules (and the cross-field ones the CRD holds as CEL) so that an
object which reached the controller anyway, e.g. written before the CRD was updated, is reported in a
condition instead of crashing the loop. A test keeps the two in agreement on valid and invalid examples.

``AutoscalerResource.parse(obj)`` takes the object as the API serves it (camelCase JSON) and raises
``ResourceError`` naming each offending field. ``policy_settings(profile)``, ``reader_settings()`` and
``targets()`` turn it into the values the policy, the Prometheus reader and the Kubernetes adapter take.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Annotated, Any, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from autoscaler.adapters.kubernetes.workload import APPS_PLURALS, WorkloadRef
from autoscaler.adapters.prometheus import ROUTER_QUERIES, ReaderSettings, SignalQueries, window_seconds
from autoscaler.config.profiles import NAME_PATTERN, ProfileError, load_named_profile
from autoscaler.core.observation import CounterSource
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.settings import Behavior, Forecast, PolicySettings, RateLimit
from autoscaler.profiles.schema import Profile

GROUP, VERSION, KIND, PLURAL = (
    "inference-autoscaler.io",
    "v1alpha1",
    "InferenceAutoscaler",
    "inferenceautoscalers",
)
API_VERSION = f"{GROUP}/{VERSION}"
URL_PATTERN = r"^https?://[^/@?#\s]+(/[^\s]*)?$"  # http(s), a host, no user info


class ResourceError(ValueError):
    """A custom resource whose spec cannot be acted on; the message names the resource and the fields."""


class Mode(enum.StrEnum):
    DIRECT = "direct"  # the controller writes the scale subresource
    ADVISORY = "advisory"  # it only publishes desired replicas (HPA or KEDA actuate)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ProfileRef(_Spec):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    inline: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.name is None) == (self.inline is None):
            raise ValueError("give exactly one of profile.name and profile.inline")
        return self

    def load(self) -> Profile:
        """The profile this names (a file in the profile directory, nowhere else) or holds; raises
        ``ProfileError``."""
        if self.name is not None:
            return load_named_profile(self.name)
        try:
            return Profile.model_validate(self.inline)
        except pydantic.ValidationError as error:
            raise ProfileError(f"inline profile: {_problems(error)}") from error


class Latency(_Spec):
    seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    percentile: Annotated[float, Field(gt=0, lt=100)] = 90.0

    def target(self) -> LatencyTarget:
        return LatencyTarget(seconds=self.seconds, percentile=self.percentile)


class SloSpec(_Spec):
    ttft: Latency
    itl: Latency


class ScaleTargetRef(_Spec):
    api_version: Annotated[str, Field(min_length=1)]
    kind: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    plural: Annotated[str, Field(min_length=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _plural_outside_apps(self) -> Self:
        if self.plural is None and not (self.api_version == "apps/v1" and self.kind in APPS_PLURALS):
            raise ValueError(f"{self.api_version} {self.kind} needs scaleTargetRef.plural")
        return self


class PhaseSpec(_Spec):
    scale_target_ref: ScaleTargetRef
    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=1)]
    pod_selector: Annotated[str, Field(min_length=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class PhasesSpec(_Spec):
    prefill: PhaseSpec | None = None
    decode: PhaseSpec | None = None
    aggregated: PhaseSpec | None = None

    @pydantic.model_validator(mode="after")
    def _one_shape(self) -> Self:
        disaggregated = self.prefill is not None and self.decode is not None
        if self.aggregated is not None and (self.prefill is not None or self.decode is not None):
            raise ValueError("give either prefill and decode, or aggregated alone")
        if self.aggregated is None and not disaggregated:
            raise ValueError("give both prefill and decode, or aggregated alone")
        return self

    @property
    def mode(self) -> ServingMode:
        return ServingMode.AGGREGATED if self.aggregated is not None else ServingMode.DISAGGREGATED

    def of(self, phase: Phase) -> PhaseSpec:
        spec: PhaseSpec | None = getattr(self, phase.value)
        assert spec is not None, f"{phase} is not a phase of a {self.mode} deployment"
        return spec


class MetricsSpec(_Spec):
    source: CounterSource = "vllm"
    pool: Annotated[str, Field(min_length=1)] | None = None
    pool_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "pool"
    phase_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "phase"
    window: Annotated[str, Field(pattern=r"^[1-9][0-9]*(s|m|h)$")] = "1m"


class ScalingRules(_Spec):
    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    pods: Annotated[int, Field(ge=1)] | None = None
    percent: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    period_seconds: Annotated[int, Field(ge=1, le=1800)] | None = None

    def window(self, default: float) -> float:
        return (
            default if self.stabilization_window_seconds is None else float(self.stabilization_window_seconds)
        )

    def limit(self, default: RateLimit) -> RateLimit:
        return RateLimit(
            pods=default.pods if self.pods is None else self.pods,
            percent=default.percent if self.percent is None else self.percent,
            period_s=default.period_s if self.period_seconds is None else float(self.period_seconds),
        )


class BehaviorSpec(_Spec):
    scale_up: ScalingRules = ScalingRules()
    scale_down: ScalingRules = ScalingRules()
    drain_timeout_seconds: Annotated[int, Field(ge=0, le=3600)] = 120

    def behavior(self) -> Behavior:
        default = Behavior()
        return Behavior(
            up_window_s=self.scale_up.window(default.up_window_s),
            down_window_s=self.scale_down.window(default.down_window_s),
            up_limit=self.scale_up.limit(default.up_limit),
            down_limit=self.scale_down.limit(default.down_limit),
        )


class RouterSpec(_Spec):
    # the shape only: which hosts the controller fetches is its rule (adapters.router_metrics.refusal)
    metrics_url: Annotated[str, Field(pattern=URL_PATTERN, max_length=2048)] | None = None


class AutoscalerSpec(_Spec):
    mode: Mode = Mode.DIRECT
    profile: ProfileRef
    gpus_per_replica: Annotated[int, Field(ge=1)] | None = None
    slo: SloSpec
    gpu_budget: Annotated[int, Field(ge=1)] | None = None
    control_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    max_signal_age_seconds: Annotated[int, Field(ge=1)] = 90
    phases: PhasesSpec
    metrics: MetricsSpec = MetricsSpec()
    behavior: BehaviorSpec = BehaviorSpec()
    router: RouterSpec = RouterSpec()

    @pydantic.model_validator(mode="after")
    def _zero_needs_the_router(self) -> Self:
        # At zero replicas no engine reports and the router places nothing: the requests its admission
        # queue holds are the only demand there is, read from its metrics (policy.wake).
        at_zero = [p.value for p in self.phases.mode.phases if self.phases.of(p).min_replicas == 0]
        if at_zero and self.router.metrics_url is None:
            raise ValueError(
                f"minReplicas 0 ({', '.join(at_zero)}) needs router.metricsUrl: at zero replicas the "
                "router's queue is the only demand the controller can see, and nothing would wake the pool"
            )
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class AutoscalerResource:
    """One custom resource: where it lives, which version of its spec this is, and the spec."""

    namespace: str
    name: str
    generation: int
    spec: AutoscalerSpec

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> AutoscalerResource:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        try:
            spec = AutoscalerSpec.model_validate(obj.get("spec"))
        except pydantic.ValidationError as error:
            raise ResourceError(f"{namespace}/{name}: invalid spec: {_problems(error)}") from error
        return cls(namespace=namespace, name=name, generation=int(meta.get("generation") or 0), spec=spec)

    @property
    def mode(self) -> ServingMode:
        return self.spec.phases.mode

    @property
    def pool(self) -> str:
        return self.spec.metrics.pool or self.name

    def targets(self) -> dict[Phase, WorkloadRef]:
        refs = {}
        for phase in self.mode.phases:
            ref = self.spec.phases.of(phase).scale_target_ref
            refs[phase] = WorkloadRef(
                api_version=ref.api_version,
                kind=ref.kind,
                name=ref.name,
                namespace=self.namespace,
                plural=ref.plural or "",
            )
        return refs

    def policy_settings(self, profile: Profile) -> PolicySettings:
        """The policy's settings; raises ``ResourceError`` for combinations no schema can see (a GPU budget
        below what the minimum replicas already hold)."""
        spec = self.spec
        if spec.gpus_per_replica is not None:
            profile = profile.model_copy(update={"gpus_per_replica": spec.gpus_per_replica})
        bounds = {
            phase: ReplicaBounds(
                minimum=spec.phases.of(phase).min_replicas, maximum=spec.phases.of(phase).max_replicas
            )
            for phase in self.mode.phases
        }
        try:
            return PolicySettings(
                profile=profile,
                slo=Slo(ttft=spec.slo.ttft.target(), itl=spec.slo.itl.target()),
                mode=self.mode,
                bounds=bounds,
                control_interval_s=float(spec.control_interval_seconds),
                gpu_budget=spec.gpu_budget,
                max_signal_age_s=float(spec.max_signal_age_seconds),
                behavior=spec.behavior.behavior(),
                # the window the rates are read over: in-flight growth and a jump's height are read over it
                forecast=Forecast(rate_window_s=window_seconds(spec.metrics.window)),
                counter_source=spec.metrics.source,
            )
        except ValueError as error:
            raise ResourceError(f"{self.namespace}/{self.name}: {error}") from error

    def reader_settings(self) -> ReaderSettings:
        metrics = self.spec.metrics
        return ReaderSettings(
            window=metrics.window,
            ttft_quantile=self.spec.slo.ttft.percentile / 100.0,
            itl_quantile=self.spec.slo.itl.percentile / 100.0,
            pool_label=metrics.pool_label,
            phase_label=metrics.phase_label,
            queries=ROUTER_QUERIES if metrics.source == "router" else SignalQueries(),
        )


def _problems(error: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()
    )
