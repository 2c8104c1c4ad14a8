"""``WorkloadSpec``: a workload as scenario YAML states it, and ``build_workload`` that makes the ``Trace``.

A workload is a source, then prefix hashes, then transforms in the order listed::

    workload:
      kind: trace                       # or: synthetic
      path: ../shared/traces/AzureLLMInferenceTrace_conv.csv
      hashes: auto                      # keep the file's hashes, or synthesize them if it has none
      transforms:
        - {kind: truncate, start_s: 0, end_s: 1800}
        - {kind: superpose, copies: 3}
        - {kind: modulate, curve: {kind: diurnal, peak_to_trough: 3, period_s: 1800}}

    workload:
      kind: synthetic
      duration_s: 3600
      arrivals: {kind: gamma, rate: 5.5, cv: 3}  # poisson|gamma|weibull|diurnal|steps|spike|points
      lengths: mooncake-conversation  # a preset, or {prompt: {mean, median, p99}, output: {...},
                                      #   correlation: 0.6} (of prompt and output, default 0)

Each stage draws from its own child of the ``rng`` passed in (``Generator.spawn``), so adding a transform
never changes the draws of the source before it. Relative paths resolve against ``base_dir`` (the scenario
file's folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pydantic
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from autoscaler.sim.workloads import curves, generators, hashing, lengths, loaders, transforms
from autoscaler.sim.workloads import trace as trace_mod

__all__ = ["WorkloadSpec", "build_workload"]


class _Spec(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


# --- rate curves -------------------------------------------------------------------------------------------
class DiurnalSpec(_Spec):
    kind: Literal["diurnal"]
    mean_rate: PositiveFloat = 1.0
    peak_to_trough: Annotated[float, Field(ge=1)] = 3.0
    period_s: PositiveFloat = 86_400.0
    peak_s: float = 0.0

    def build(self) -> curves.RateCurve:
        return curves.Diurnal(self.mean_rate, self.peak_to_trough, self.period_s, self.peak_s)


class StepsSpec(_Spec):
    kind: Literal["steps"]
    base_rate: NonNegativeFloat
    changes: tuple[tuple[NonNegativeFloat, NonNegativeFloat], ...] = ()

    def build(self) -> curves.RateCurve:
        return curves.Steps(self.base_rate, self.changes)


class SpikeSpec(_Spec):
    kind: Literal["spike"]
    base_rate: NonNegativeFloat
    peak_rate: NonNegativeFloat
    start_s: NonNegativeFloat
    duration_s: PositiveFloat

    def build(self) -> curves.RateCurve:
        return curves.Spike(self.base_rate, self.peak_rate, self.start_s, self.duration_s)


class PointsSpec(_Spec):
    kind: Literal["points"]
    points: tuple[tuple[NonNegativeFloat, NonNegativeFloat], ...] = Field(min_length=1)

    def build(self) -> curves.RateCurve:
        return curves.PiecewiseLinear(self.points)


CurveSpec = Annotated[DiurnalSpec | StepsSpec | SpikeSpec | PointsSpec, Field(discriminator="kind")]


# --- arrival processes -------------------------------------------------------------------------------------
class PoissonSpec(_Spec):
    kind: Literal["poisson"]
    rate: PositiveFloat

    def arrivals(self, *, duration_s: float, rng: np.random.Generator) -> trace_mod.FloatArray:
        return generators.renewal_arrivals(rate=self.rate, duration_s=duration_s, rng=rng)


class RenewalSpec(_Spec):
    kind: Literal["gamma", "weibull"]
    rate: PositiveFloat
    cv: Annotated[float, Field(ge=0.05, le=50)]

    def arrivals(self, *, duration_s: float, rng: np.random.Generator) -> trace_mod.FloatArray:
        return generators.renewal_arrivals(
            rate=self.rate, duration_s=duration_s, rng=rng, family=self.kind, cv=self.cv
        )


ArrivalSpec = Annotated[
    PoissonSpec | RenewalSpec | DiurnalSpec | StepsSpec | SpikeSpec | PointsSpec, Field(discriminator="kind")
]


MAX_REQUESTS = 10_000_000
"""The most requests a synthetic workload may ask for (ten times the largest simulation benchmarked, about
6 GB of simulator state): beyond it a typo in a rate is refused, not allocated until memory runs out."""


def _arrivals(spec: ArrivalSpec, *, duration_s: float, rng: np.random.Generator) -> trace_mod.FloatArray:
    peak = spec.rate if isinstance(spec, PoissonSpec | RenewalSpec) else spec.build().peak(duration_s)
    if not peak * duration_s <= MAX_REQUESTS:
        raise ValueError(
            f"arrivals: {peak:g} req/s over {duration_s:g} s may ask for over {MAX_REQUESTS:,} requests"
        )
    if isinstance(spec, PoissonSpec | RenewalSpec):
        return spec.arrivals(duration_s=duration_s, rng=rng)
    return generators.curve_arrivals(spec.build(), duration_s=duration_s, rng=rng)


# --- lengths and prefixes ----------------------------------------------------------------------------------
class LogNormalSpec(_Spec):
    """Published statistics to fit (see lengths.py), and the clip bounds."""

    mean: PositiveFloat
    median: PositiveFloat
    p99: PositiveFloat
    low: Annotated[int, Field(ge=0)] = 1
    high: PositiveInt = 131_072

    def build(self) -> lengths.LogNormalLengths:
        return lengths.LogNormalLengths.fit(
            mean=self.mean, median=self.median, p99=self.p99, low=self.low, high=self.high
        )


class LengthsSpec(_Spec):
    prompt: LogNormalSpec
    output: LogNormalSpec
    correlation: Annotated[float, Field(ge=-1, le=1)] = 0.0  # of the lengths' normal scores (lengths.py)

    def build(self) -> lengths.LengthPreset:
        return lengths.LengthPreset(
            prompt=self.prompt.build(), output=self.output.build(), correlation=self.correlation
        )


PresetName = Literal["azure-conversation", "mooncake-conversation"]


class PrefixSpec(_Spec):
    """Parameters of hashing.PrefixModel (defaults calibrated on the Mooncake conversation trace)."""

    system_prompts: PositiveInt = 1
    system_prompt_blocks: Annotated[int, Field(ge=0)] = 1
    followup_probability: Annotated[float, Field(ge=0, le=1)] = 0.39
    lag_median_s: PositiveFloat = 123.0
    lag_p90_s: PositiveFloat = 483.0

    def build(self) -> hashing.PrefixModel:
        return hashing.PrefixModel(**self.model_dump())


# --- transforms --------------------------------------------------------------------------------------------
class CompressSpec(_Spec):
    kind: Literal["compress"]
    factor: PositiveFloat

    def apply(self, trace: trace_mod.Trace, rng: np.random.Generator) -> trace_mod.Trace:
        return transforms.compress(trace, self.factor)


class SuperposeSpec(_Spec):
    kind: Literal["superpose"]
    copies: PositiveInt
    share: transforms.ShareMode = "system"

    def apply(self, trace: trace_mod.Trace, rng: np.random.Generator) -> trace_mod.Trace:
        return transforms.superpose(trace, copies=self.copies, rng=rng, share=self.share)


class ModulateSpec(_Spec):
    kind: Literal["modulate"]
    curve: CurveSpec

    def apply(self, trace: trace_mod.Trace, rng: np.random.Generator) -> trace_mod.Trace:
        return transforms.modulate(trace, self.curve.build())


class TruncateSpec(_Spec):
    kind: Literal["truncate"]
    start_s: NonNegativeFloat = 0.0
    end_s: PositiveFloat

    def apply(self, trace: trace_mod.Trace, rng: np.random.Generator) -> trace_mod.Trace:
        return transforms.truncate(trace, start_s=self.start_s, end_s=self.end_s)


TransformSpec = Annotated[
    CompressSpec | SuperposeSpec | ModulateSpec | TruncateSpec, Field(discriminator="kind")
]


# --- the workload ------------------------------------------------------------------------------------------
class WorkloadSpec(_Spec):
    """A trace file or a synthetic generator, prefix hashes, then transforms (see the module docstring).

    ``hashes``: ``auto`` keeps a file's block hashes and synthesizes them (from ``prefix``) where there are
    none; ``synthesize`` always replaces them; ``none`` drops them.
    """

    kind: Literal["trace", "synthetic"]
    name: str | None = None
    path: Path | None = None
    format: loaders.TraceFormat | Literal["auto"] = "auto"
    duration_s: PositiveFloat | None = None
    arrivals: ArrivalSpec | None = None
    lengths: PresetName | LengthsSpec = "azure-conversation"
    block_tokens: PositiveInt = 512
    hashes: Literal["auto", "synthesize", "none"] = "auto"
    prefix: PrefixSpec = PrefixSpec()
    transforms: tuple[TransformSpec, ...] = ()

    @pydantic.model_validator(mode="after")
    def _source_fields_match_kind(self) -> WorkloadSpec:
        if self.kind == "trace":
            if self.path is None:
                raise ValueError("a trace workload needs `path`")
            if self.arrivals is not None or self.duration_s is not None:
                raise ValueError("`arrivals` and `duration_s` are for synthetic workloads; truncate a trace")
        else:
            if self.arrivals is None or self.duration_s is None:
                raise ValueError("a synthetic workload needs `arrivals` and `duration_s`")
            if self.path is not None:
                raise ValueError("`path` is for trace workloads")
        return self


def _source(spec: WorkloadSpec, *, rng: np.random.Generator, base_dir: Path | None) -> trace_mod.Trace:
    if spec.kind == "trace":
        assert spec.path is not None  # checked by the validator
        path = spec.path if spec.path.is_absolute() or base_dir is None else base_dir / spec.path
        return loaders.load_trace(path, format=spec.format, name=spec.name, block_tokens=spec.block_tokens)
    assert spec.arrivals is not None and spec.duration_s is not None  # checked by the validator
    arrival_rng, length_rng = rng.spawn(2)
    preset = lengths.PRESETS[spec.lengths] if isinstance(spec.lengths, str) else spec.lengths.build()
    return generators.synthetic_trace(
        name=spec.name or f"synthetic-{spec.arrivals.kind}",
        arrival_s=_arrivals(spec.arrivals, duration_s=spec.duration_s, rng=arrival_rng),
        preset=preset,
        rng=length_rng,
        block_tokens=spec.block_tokens,
    )


def build_workload(
    spec: WorkloadSpec, *, rng: np.random.Generator, base_dir: Path | None = None
) -> trace_mod.Trace:
    """The ``Trace`` that ``spec`` describes; the same spec and seed give the same trace."""
    source_rng, hash_rng, transform_rng = rng.spawn(3)
    trace = _source(spec, rng=source_rng, base_dir=base_dir)
    if spec.hashes == "none":
        trace = dataclasses.replace(trace, block_offsets=None, block_hashes=None)
    elif spec.hashes == "synthesize" or not trace.has_hashes:
        trace = hashing.synthesize_hashes(trace, rng=hash_rng, model=spec.prefix.build())
    for transform, stage_rng in zip(spec.transforms, transform_rng.spawn(len(spec.transforms)), strict=True):
        trace = transform.apply(trace, stage_rng)
    return trace
