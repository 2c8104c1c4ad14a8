"""Fitting the shared engine time model (``schema.py``) to latencies measured on a live engine.

``autoscaler profile`` measures two kinds of sample and this module turns them into a ``Profile``:

- ``PrefillSample``: one request alone on the engine, ``new_tokens`` uncached prompt tokens (one chunk), its
  time to first token. The model says ``base + per_step + per_token * n + per_attention_pair * n^2``;
- ``DecodeSample``: the typical inter-token time while ``batch`` sequences decode together holding
  ``context`` KV tokens in total. The model says
  ``base + per_sequence * batch + per_context_token * context``.

Both kinds share ``step.base_s``, so they are fitted together, as one least-squares problem over the six
coefficients; ``per_step`` (``prefill.per_step_s``) is what a step that prefills costs beyond a decode step,
the difference of the two kinds' intercepts. Two choices make the fit usable as a profile:

- residuals are relative (each row divided by its measured time), so millisecond decode steps weigh as much
  as prefills ten times longer, and the profile is about as wrong, in per cent, everywhere it was measured;
- coefficients are non-negative (NNLS): an unconstrained fit of noisy timings readily returns a negative
  per-token or per-context cost, which predicts negative step times outside the measured range.

Pure: no I/O and no clock; the caller passes the samples and the provenance text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.optimize import nnls

from autoscaler.profiles import schema
from autoscaler.profiles.schema import PositiveQuantity, Profile, ProvenanceKind, Quantity

__all__ = [
    "DecodeSample",
    "EngineFacts",
    "PrefillSample",
    "TimeModelFit",
    "fit_time_model",
    "measured_profile",
]

# NNLS may put a coefficient at exactly 0; the schema needs step.base_s and prefill.per_token_s positive.
# A picosecond is far below anything measurable and changes no prediction.
_NEGLIGIBLE_S = 1e-12


@dataclasses.dataclass(frozen=True, slots=True)
class PrefillSample:
    new_tokens: int
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class DecodeSample:
    batch: int
    context: float  # KV tokens held by the whole batch
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class TimeModelFit:
    base_s: float
    prefill_per_step_s: float
    prefill_per_token_s: float
    prefill_per_attention_pair_s: float
    decode_per_sequence_s: float
    decode_per_context_token_s: float
    prefill_rms_relative_error: float  # of the fitted model on the samples it was fitted to
    decode_rms_relative_error: float

    def prefill_s(self, new_tokens: float) -> float:
        return (
            self.base_s
            + self.prefill_per_step_s
            + self.prefill_per_token_s * new_tokens
            + self.prefill_per_attention_pair_s * (new_tokens**2)
        )

    def decode_step_s(self, batch: float, context: float) -> float:
        return self.base_s + self.decode_per_sequence_s * batch + self.decode_per_context_token_s * context


def fit_time_model(prefill: Sequence[PrefillSample], decode: Sequence[DecodeSample]) -> TimeModelFit:
    """Non-negative least squares of relative residuals over both kinds of sample (see the module doc)."""
    if len(prefill) < 2 or len(decode) < 2:
        raise ValueError(
            f"need at least 2 prefill and 2 decode samples, got {len(prefill)} and {len(decode)}"
        )
    if any(s.seconds <= 0 for s in prefill) or any(s.seconds <= 0 for s in decode):
        raise ValueError("measured times must be positive")
    # columns: base, prefill per step, per token, per pair, decode per sequence, decode per context token
    rows = [[1.0, 1.0, s.new_tokens, float(s.new_tokens) ** 2, 0.0, 0.0] for s in prefill]
    rows += [[1.0, 0.0, 0.0, 0.0, s.batch, s.context] for s in decode]
    design = np.asarray(rows, dtype=np.float64)
    measured = np.asarray([s.seconds for s in prefill] + [s.seconds for s in decode], dtype=np.float64)
    # Scale columns to unit norm so NNLS converges on coefficients that differ by ten orders of magnitude.
    weighted = design / measured[:, None]
    norms = np.linalg.norm(weighted, axis=0)
    norms[norms == 0] = 1.0
    scaled, _ = nnls(weighted / norms, np.ones_like(measured))
    coefficients = scaled / norms
    relative = design @ coefficients / measured - 1.0
    n = len(prefill)
    return TimeModelFit(
        base_s=float(coefficients[0]),
        prefill_per_step_s=float(coefficients[1]),
        prefill_per_token_s=float(coefficients[2]),
        prefill_per_attention_pair_s=float(coefficients[3]),
        decode_per_sequence_s=float(coefficients[4]),
        decode_per_context_token_s=float(coefficients[5]),
        prefill_rms_relative_error=float(np.sqrt(np.mean(relative[:n] ** 2))),
        decode_rms_relative_error=float(np.sqrt(np.mean(relative[n:] ** 2))),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class EngineFacts:
    """What the engine reports or was configured with, beside the timings."""

    model: str
    accelerator: str
    tensor_parallel: int
    kv_capacity_tokens: int  # num_gpu_blocks x block_size (vllm:cache_config_info)
    block_size: int
    kv_bytes_per_token: float
    kv_bytes_source: str
    max_num_seqs: int
    max_num_batched_tokens: int
    limits_source: str  # where the two limits come from (engine flags the operator passed)


def measured_profile(
    fit: TimeModelFit,
    facts: EngineFacts,
    *,
    source: str,
    startup_s: float,
    notes: str = "",
) -> Profile:
    """A profile whose time model and KV cache are measured; what cannot be measured says so.

    ``source`` names the endpoint, date and method; it is the provenance of every measured number.
    KV transfer (P/D only) cannot be measured on one aggregated engine and is marked assumed; so is the
    start-up time the caller passes.
    """

    def measured(value: float, what: str) -> Quantity:
        return Quantity(value=value, kind=ProvenanceKind.MEASURED, source=f"{source}; {what}")

    def positive(value: float, kind: ProvenanceKind, text: str) -> PositiveQuantity:
        return PositiveQuantity(value=max(value, _NEGLIGIBLE_S), kind=kind, source=text)

    fit_note = (
        f"NNLS fit, rms relative error prefill {fit.prefill_rms_relative_error:.1%}, "
        f"decode {fit.decode_rms_relative_error:.1%}"
    )
    return Profile(
        model=facts.model,
        accelerator=facts.accelerator,
        tensor_parallel=facts.tensor_parallel,
        gpus_per_replica=facts.tensor_parallel,
        step=schema.StepModel(
            base_s=positive(fit.base_s, ProvenanceKind.MEASURED, f"{source}; {fit_note}"),
        ),
        prefill=schema.PrefillModel(
            per_token_s=positive(
                fit.prefill_per_token_s, ProvenanceKind.MEASURED, f"{source}; TTFT vs prompt length"
            ),
            per_attention_pair_s=measured(fit.prefill_per_attention_pair_s, "TTFT vs prompt length"),
            per_step_s=measured(fit.prefill_per_step_s, "TTFT intercept over the decode step's"),
        ),
        decode=schema.DecodeModel(
            per_sequence_s=measured(fit.decode_per_sequence_s, "inter-token time vs batch size"),
            per_context_token_s=measured(fit.decode_per_context_token_s, "inter-token time vs context"),
        ),
        kv_cache=schema.KvCache(
            capacity_tokens=positive(
                facts.kv_capacity_tokens,
                ProvenanceKind.MEASURED,
                f"{source}; vllm:cache_config_info num_gpu_blocks x block_size",
            ),
            block_size=positive(
                facts.block_size, ProvenanceKind.MEASURED, f"{source}; vllm:cache_config_info block_size"
            ),
            bytes_per_token=positive(facts.kv_bytes_per_token, ProvenanceKind.DERIVED, facts.kv_bytes_source),
        ),
        kv_transfer=schema.KvTransfer(
            bandwidth_bytes_per_s=positive(
                5.0e10, ProvenanceKind.ASSUMED, "not measurable on one aggregated engine; 400 Gb/s NIC"
            ),
            latency_s=Quantity(
                value=0.002, kind=ProvenanceKind.ASSUMED, source="not measurable on one aggregated engine"
            ),
        ),
        limits=schema.Limits(
            max_num_seqs=positive(facts.max_num_seqs, ProvenanceKind.ASSUMED, facts.limits_source),
            max_num_batched_tokens=positive(
                facts.max_num_batched_tokens, ProvenanceKind.ASSUMED, facts.limits_source
            ),
        ),
        startup=schema.Startup(
            mean_s=positive(startup_s, ProvenanceKind.ASSUMED, "given to autoscaler profile (--startup-s)"),
            spread_s=Quantity(value=0.0, kind=ProvenanceKind.ASSUMED, source="not measured"),
        ),
        notes=notes,
    )
