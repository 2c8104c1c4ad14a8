"""Fitting a derived profile to one run's measured latencies: efficiencies across models, factors for one.

A ground-truth stage (``Stage`` + ``Measured``) is steady constant-rate load on one replica. Its mean step
time obeys a balance that needs no simulation: in one second the replica runs ``1/dt`` steps, each costing
``base + per_sequence·N + per_context_token·C``, plus ``rate`` prefills costing ``X`` each (their tokens
and attention pairs, and the extra cost of a step that prefills), so

    dt·(1 − rate·X) = base + per_sequence·N + per_context_token·C,

with ``N`` = rate × time in decode (Little's law on the measured latencies), ``C`` = ``N`` × the mean
context, and ``dt`` the measured TPOT. The left side is known, the right side is linear in the time
model's coefficients, which are linear in the efficiency terms (``Hardware.basis``). Two fits use it:

- ``fit_efficiency``: the accelerator's efficiencies from many models' stages (relative residuals,
  bounded least squares pulled toward the prior by a weight ``choose_prior_weight`` picks by leaving one
  model out), the prefill's compute terms held at given values (the ground truth's prompts are almost
  all cached, so it says nothing about them);
- ``fit_factors``: one profile's three scale factors (step, decode, prefill groups) from one run (a
  ground-truth experiment's stages, or ``autoscaler profile``'s isolated prefill and decode samples),
  regularised toward 1 so one run cannot move what it does not measure; ``profile derive --fit-to``
  reports them with the error before and after.

The client's time to first token adds to the engine's: TTFT ≈ a wait for the step in flight (half a step),
the prefill step, ``first_token_steps`` more steps (the stream delivers tokens in pairs: ground-truth
README) and a constant ``first_token_s`` (API server, tokenizer, HTTP), fitted as the median residual.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import lsq_linear, nnls

from autoscaler.profiles.roofline import EFFICIENCY_TERMS, Efficiency, Hardware, TimeCoefficients

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "FIRST_TOKEN_STEPS",
    "PRIOR_WEIGHTS",
    "FactorFit",
    "Measured",
    "MeasuredStage",
    "Stage",
    "choose_prior_weight",
    "fit_efficiency",
    "fit_factors",
    "fit_first_token_s",
    "predicted_tpot_s",
    "sample_rows",
    "stage_rows",
]

FIRST_TOKEN_STEPS = 1.0  # the client sees the first token with the second (ground-truth README, ITL caveat)
_WAIT_STEPS = 0.5  # a request arrives, on average, half way through the step in flight


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One constant-rate stage of an inference-perf ``shared_prefix`` workload."""

    rate: float  # requests per second, evenly spaced
    duration_s: float
    prompt_tokens: int
    shared_prefix_tokens: int  # the group's system prompt (cached across the group's prompts)
    output_tokens: int
    groups: int
    prompts_per_group: int

    def __post_init__(self) -> None:
        if not (0 < self.rate <= 1e4 and 0 < self.duration_s <= 1e5):
            raise ValueError(f"stage rate {self.rate} or duration {self.duration_s} out of bounds")
        if not 0 <= self.shared_prefix_tokens <= self.prompt_tokens or self.output_tokens < 1:
            raise ValueError("stage token counts out of bounds")
        if not (1 <= self.groups <= 10**5 and 1 <= self.prompts_per_group <= 10**5):
            raise ValueError("a stage needs between 1 and 1e5 groups and prompts per group")

    def uncached_tokens(self, block: int) -> int:
        """Prompt tokens computed once every prompt is cached: the partial last block (vLLM keeps >= 1)."""
        cached = min((self.prompt_tokens // block) * block, self.prompt_tokens - 1)
        return self.prompt_tokens - cached


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    ttft_mean_s: float
    ttft_p90_s: float
    e2e_mean_s: float
    e2e_p90_s: float
    tpot_s: float  # (E2E mean - TTFT mean) / (output - 1): the ground truth's reliable per-token time


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MeasuredStage:
    stage: Stage
    measured: Measured
    overloaded: bool  # requests failed (time-outs): not steady state, kept out of fits and headlines


def _prefill_work_s(c: TimeCoefficients, stage: Stage, block: int) -> float:
    """X: what one request's prefill adds to the steps it shares, once its prompt is cached."""
    n = stage.uncached_tokens(block)
    h = stage.prompt_tokens - n
    return c.per_step_s + c.per_token_s * n + c.per_attention_pair_s * ((h + n) ** 2 - h**2)


def _load(stage: Stage, measured: Measured) -> tuple[float, float]:
    """(N, C): decoding sequences and their KV tokens, by Little's law on the measured latencies."""
    batch = stage.rate * max(0.0, measured.e2e_mean_s - measured.ttft_mean_s)
    return batch, batch * (stage.prompt_tokens + stage.output_tokens / 2)


def predicted_tpot_s(c: TimeCoefficients, stage: Stage, measured: Measured, block: int) -> float:
    """The balance's step time at the measured load (``inf`` when prefills alone saturate the replica)."""
    batch, context = _load(stage, measured)
    busy = 1.0 - stage.rate * _prefill_work_s(c, stage, block)
    decode = c.base_s + c.per_sequence_s * batch + c.per_context_token_s * context
    return decode / busy if busy > 0 else float("inf")


# Bounds of the fitted terms: an efficiency between 0.3 and 1 of the datasheet, an overhead below 50 ms.
_INVERSE_BOUNDS = (1.0, 1 / 0.3)
_OVERHEAD_BOUNDS = (0.0, 0.05)


def fit_efficiency(
    runs: Sequence[tuple[Hardware, MeasuredStage]],
    *,
    prior: Efficiency,
    block: int,
    free: Sequence[str] = (
        "inv_weight_bandwidth",
        "layer_overhead_s",
        "allreduce_latency_s",
        "sequence_overhead_s",
        "inv_kv_bandwidth",
    ),
    prior_weight: float,
) -> Efficiency:
    """The ``free`` efficiency terms fitted to the stages' TPOT; the others stay at ``prior``'s.

    Bounded least squares of relative residuals, pulled toward the prior (``prior_weight`` per term,
    relative to the prior's value): the ground truth has four models, the free terms trade off against
    each other across so few (a per-layer cost against bandwidth, KV bandwidth seen by one model without
    grouped-query attention), and a fit left free explains the models it sees at the expense of the next
    one. ``choose_prior_weight`` picks the weight that predicts held-out models best.
    """
    clean = [(hw, ms) for hw, ms in runs if not ms.overloaded]
    if not clean:
        raise ValueError("no clean stage to fit the efficiencies to")
    theta = prior.vector()
    columns = [EFFICIENCY_TERMS.index(name) for name in free]
    fixed = [i for i in range(len(EFFICIENCY_TERMS)) if i not in columns]
    rows: list[npt.NDArray[np.float64]] = []
    targets: list[float] = []
    for hw, ms in clean:
        c = TimeCoefficients.of(hw, prior)
        batch, context = _load(ms.stage, ms.measured)
        decode_row = hw.basis()[:3].T @ np.array([1.0, batch, context])  # d(base + bN + cC) / d(theta)
        lhs = ms.measured.tpot_s * (1.0 - ms.stage.rate * _prefill_work_s(c, ms.stage, block))
        rows.append(decode_row[columns] / lhs)
        targets.append(1.0 - float(decode_row[fixed] @ theta[fixed]) / lhs)
    scale = np.array([max(abs(theta[i]), 1e-5) for i in columns])  # the prior's size, or 10 us
    for k in range(len(columns)):
        row = np.zeros(len(columns))
        row[k] = prior_weight / scale[k]
        rows.append(row)
        targets.append(prior_weight * theta[columns[k]] / scale[k])
    bounds = [
        _INVERSE_BOUNDS if EFFICIENCY_TERMS[i].startswith("inv_") else _OVERHEAD_BOUNDS for i in columns
    ]
    lower, upper = (np.array(b) for b in zip(*bounds, strict=True))
    design = np.asarray(rows) * scale  # solve for theta / scale: columns of comparable size
    solution = lsq_linear(design, np.asarray(targets), bounds=(lower / scale, upper / scale))
    theta = theta.copy()
    theta[columns] = solution.x * scale
    return Efficiency.from_vector(theta)


PRIOR_WEIGHTS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def choose_prior_weight(
    runs: Mapping[str, Sequence[tuple[Hardware, MeasuredStage]]],
    *,
    prior: Efficiency,
    block: int,
    grid: Sequence[float] = PRIOR_WEIGHTS,
) -> float:
    """The pull toward the prior that predicts a model best from the others' stages (leave one model out).

    For each weight of ``grid``: fit on all models but one, predict that one's TPOT with the balance, and
    take the median relative error over every model's clean stages; the weight with the smallest wins.
    A caller that scores on held-out models passes only its training models here (nested selection).
    """
    models = [m for m, stages in runs.items() if any(not ms.overloaded for _, ms in stages)]
    if len(models) < 2:
        raise ValueError("choosing the prior weight needs clean stages of at least two models")

    def score(weight: float) -> float:
        errors = []
        for held_out in models:
            train = [run for m in models if m != held_out for run in runs[m]]
            efficiency = fit_efficiency(train, prior=prior, block=block, prior_weight=weight)
            errors += [
                abs(predicted_tpot_s(TimeCoefficients.of(hw, efficiency), ms.stage, ms.measured, block)
                    / ms.measured.tpot_s - 1.0)
                for hw, ms in runs[held_out]
                if not ms.overloaded
            ]  # fmt: skip
        return statistics.median(errors)

    return min(grid, key=score)


def fit_first_token_s(
    runs: Sequence[tuple[TimeCoefficients, MeasuredStage]], *, block: int, steps: float = FIRST_TOKEN_STEPS
) -> float:
    """Median over clean stages of what the client's TTFT adds beyond the engine's (seconds, >= 0)."""
    residuals = [
        ms.measured.ttft_mean_s
        - (_WAIT_STEPS + 1.0 + steps) * ms.measured.tpot_s
        - _prefill_work_s(c, ms.stage, block)
        for c, ms in runs
        if not ms.overloaded
    ]
    if not residuals:
        raise ValueError("no clean stage to fit the first-token lag to")
    return max(0.0, statistics.median(residuals))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FactorFit:
    """Scale factors on a profile's coefficient groups and the relative error they leave on the run."""

    step: float  # step.base_s
    decode: float  # decode.per_sequence_s and per_context_token_s
    prefill: float  # prefill.per_token_s, per_attention_pair_s and per_step_s
    error_before: float  # median |relative error| over the run's rows, factors 1
    error_after: float

    def apply(self, c: TimeCoefficients) -> TimeCoefficients:
        return TimeCoefficients(
            base_s=c.base_s * self.step,
            per_sequence_s=c.per_sequence_s * self.decode,
            per_context_token_s=c.per_context_token_s * self.decode,
            per_token_s=c.per_token_s * self.prefill,
            per_attention_pair_s=c.per_attention_pair_s * self.prefill,
            per_step_s=c.per_step_s * self.prefill,
        )


def stage_rows(c: TimeCoefficients, stages: Sequence[MeasuredStage], *, block: int) -> FloatArray:
    """Rows (step, decode, prefill parts, measured) of the balance, one per clean stage.

    ``tpot = k_s·base + k_d·(b·N + c·C) + tpot·rate·k_p·X``: the prefill part carries the measured TPOT.
    """
    rows = []
    for ms in stages:
        if ms.overloaded:
            continue
        batch, context = _load(ms.stage, ms.measured)
        tpot = ms.measured.tpot_s
        prefill = tpot * ms.stage.rate * _prefill_work_s(c, ms.stage, block)
        decode = c.per_sequence_s * batch + c.per_context_token_s * context
        rows.append([c.base_s, decode, prefill, tpot])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def sample_rows(
    c: TimeCoefficients, prefill: Sequence[tuple[int, float]], decode: Sequence[tuple[int, float, float]]
) -> FloatArray:
    """Rows for ``autoscaler profile`` samples: (tokens, s) lone prefills, (batch, context, s) decodes."""
    rows = [
        [c.base_s, 0.0, c.per_step_s + c.per_token_s * n + c.per_attention_pair_s * n * n, seconds]
        for n, seconds in prefill
    ]
    rows += [
        [c.base_s, c.per_sequence_s * b + c.per_context_token_s * ctx, 0.0, seconds]
        for b, ctx, seconds in decode
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def fit_factors(rows: FloatArray, *, prior_weight: float = 0.1) -> FactorFit:
    """Step, decode and prefill factors from ``stage_rows`` or ``sample_rows``, pulled toward 1.

    Relative residuals; ``prior_weight`` per factor keeps one that the rows barely see (the prefill's, on
    a ground-truth run whose prompts are cached) near 1 instead of anywhere.
    """
    if len(rows) == 0 or np.any(rows[:, 3] <= 0):
        raise ValueError("need at least one clean measurement with a positive time")
    parts = rows[:, :3] / rows[:, 3:4]
    design = np.vstack([parts, prior_weight * np.eye(3)])
    target = np.concatenate([np.ones(len(rows)), np.full(3, prior_weight)])
    factors, _ = nnls(design, target)
    k = np.maximum(factors, 1e-3)

    def error(scale: FloatArray) -> float:
        return float(np.median(np.abs(parts @ scale - 1.0)))

    return FactorFit(
        step=float(k[0]),
        decode=float(k[1]),
        prefill=float(k[2]),
        error_before=error(np.ones(3)),
        error_after=error(k),
    )
