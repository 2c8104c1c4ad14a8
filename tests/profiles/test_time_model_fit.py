"""Fitting the shared time model to measured prefill and decode times (``autoscaler.profiles.fitting``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.profiles.fitting import (
    DecodeSample,
    EngineFacts,
    PrefillSample,
    TimeModelFit,
    fit_time_model,
    measured_profile,
)
from autoscaler.profiles.schema import ProvenanceKind

LENGTHS = (8, 32, 64, 128, 256, 512)
BATCHES = ((1, 100.0), (2, 400.0), (4, 800.0), (8, 3000.0), (16, 6000.0))


def samples(
    *, base: float, per_token: float, per_pair: float, per_seq: float, per_ctx: float, per_step: float = 0.0
) -> tuple[list[PrefillSample], list[DecodeSample]]:
    prefill = [PrefillSample(n, base + per_step + per_token * n + per_pair * n * n) for n in LENGTHS]
    decode = [DecodeSample(b, c, base + per_seq * b + per_ctx * c) for b, c in BATCHES]
    return prefill, decode


def test_exact_measurements_give_back_the_coefficients() -> None:
    prefill, decode = samples(
        base=2e-3, per_step=1.5e-3, per_token=2e-5, per_pair=3e-9, per_seq=1e-4, per_ctx=5e-8
    )
    fit = fit_time_model(prefill, decode)
    assert fit.base_s == pytest.approx(2e-3, rel=1e-6)
    assert fit.prefill_per_step_s == pytest.approx(1.5e-3, rel=1e-6)
    assert fit.prefill_per_token_s == pytest.approx(2e-5, rel=1e-6)
    assert fit.prefill_per_attention_pair_s == pytest.approx(3e-9, rel=1e-6)
    assert fit.decode_per_sequence_s == pytest.approx(1e-4, rel=1e-6)
    assert fit.decode_per_context_token_s == pytest.approx(5e-8, rel=1e-6)
    assert fit.prefill_rms_relative_error < 1e-6
    assert fit.decode_rms_relative_error < 1e-6


@settings(max_examples=40, deadline=None)
@given(noise=st.lists(st.floats(-0.5, 0.5), min_size=11, max_size=11), seed=st.integers(0, 10))
def test_no_coefficient_is_negative_whatever_the_noise(noise: list[float], seed: int) -> None:
    prefill, decode = samples(base=1e-3, per_token=1e-5, per_pair=0.0, per_seq=0.0, per_ctx=0.0)
    factors = iter(1.0 + np.asarray(noise))
    noisy_prefill = [PrefillSample(s.new_tokens, s.seconds * next(factors)) for s in prefill]
    noisy_decode = [DecodeSample(s.batch, s.context, s.seconds * next(factors)) for s in decode]
    fit = fit_time_model(noisy_prefill, noisy_decode)
    coefficients = (
        fit.base_s,
        fit.prefill_per_step_s,
        fit.prefill_per_token_s,
        fit.prefill_per_attention_pair_s,
        fit.decode_per_sequence_s,
        fit.decode_per_context_token_s,
    )
    assert min(coefficients) >= 0.0
    assert all(fit.decode_step_s(s.batch, s.context) > 0 for s in decode)


def test_relative_residuals_weigh_fast_decode_steps_as_much_as_slow_prefills() -> None:
    # Prefills are 10-100x slower than decode steps; an absolute fit would sacrifice the decode rows.
    prefill, decode = samples(base=1e-3, per_token=1e-4, per_pair=0.0, per_seq=2e-4, per_ctx=0.0)
    off = [PrefillSample(s.new_tokens, s.seconds * 1.1) for s in prefill]
    fit = fit_time_model(off, decode)
    assert fit.decode_rms_relative_error < 0.1
    assert fit.prefill_rms_relative_error < 0.1


def test_too_few_samples_or_non_positive_times_are_refused() -> None:
    prefill, decode = samples(base=1e-3, per_token=1e-5, per_pair=0.0, per_seq=0.0, per_ctx=0.0)
    with pytest.raises(ValueError, match="at least 2"):
        fit_time_model(prefill[:1], decode)
    with pytest.raises(ValueError, match="positive"):
        fit_time_model([*prefill, PrefillSample(10, 0.0)], decode)


def test_the_profile_says_what_was_measured_and_what_was_not() -> None:
    fit = TimeModelFit(
        base_s=0.0,  # NNLS may zero it; the schema needs it positive
        prefill_per_step_s=1e-3,
        prefill_per_token_s=2e-5,
        prefill_per_attention_pair_s=0.0,
        decode_per_sequence_s=1e-4,
        decode_per_context_token_s=0.0,
        prefill_rms_relative_error=0.05,
        decode_rms_relative_error=0.02,
    )
    facts = EngineFacts(
        model="tiny",
        accelerator="cpu",
        tensor_parallel=1,
        kv_capacity_tokens=1_048_576,
        block_size=32,
        kv_bytes_per_token=1024.0,
        kv_bytes_source="cache_config_info kv_cache_memory_bytes",
        max_num_seqs=4,
        max_num_batched_tokens=1024,
        limits_source="engine flags",
    )
    profile = measured_profile(fit, facts, source="autoscaler profile http://x on 2026-11-25", startup_s=40.0)
    assert profile.name == "tiny/cpu-tp1"
    assert 0 < profile.step.base_s.value < 1e-9
    measured = [
        profile.step.base_s,
        profile.prefill.per_token_s,
        profile.prefill.per_attention_pair_s,
        profile.prefill.per_step_s,
        profile.decode.per_sequence_s,
        profile.decode.per_context_token_s,
        profile.kv_cache.capacity_tokens,
        profile.kv_cache.block_size,
    ]
    assert all(q.kind is ProvenanceKind.MEASURED and "http://x on 2026-11-25" in q.source for q in measured)
    assert profile.kv_capacity_tokens == 1_048_576 and profile.block_size == 32
    assert profile.kv_transfer.bandwidth_bytes_per_s.kind is ProvenanceKind.ASSUMED
    assert profile.startup.mean_s.kind is ProvenanceKind.ASSUMED
    assert profile.max_num_seqs == 4 and profile.max_num_batched_tokens == 1024
