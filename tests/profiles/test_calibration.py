"""Fitting efficiencies across models and factors for one run (``autoscaler.profiles.calibration``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autoscaler.profiles.architecture import parse_config
from autoscaler.profiles.calibration import (
    PRIOR_WEIGHTS,
    Measured,
    MeasuredStage,
    Stage,
    choose_prior_weight,
    fit_efficiency,
    fit_factors,
    predicted_tpot_s,
    sample_rows,
    stage_rows,
)
from autoscaler.profiles.roofline import Hardware, TimeCoefficients, hardware
from tests.profiles.test_roofline import EFFICIENCY, H100

ARCHS = {
    "7b-mha": {
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    },
    "34b": {
        "num_hidden_layers": 48,
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
    },
    "70b": {
        "num_hidden_layers": 80,
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
    },
}
TP = {"7b-mha": 1, "34b": 2, "70b": 4}


def _stage(rate: float, prompt: int = 600) -> Stage:
    return Stage(
        rate=rate,
        duration_s=600,
        prompt_tokens=prompt,
        shared_prefix_tokens=100,
        output_tokens=248,
        groups=10,
        prompts_per_group=10,
    )


def _synthetic_runs(truth: TimeCoefficients | None = None) -> list[tuple[Hardware, MeasuredStage]]:
    """Stages whose TPOT the balance gives exactly at the true efficiencies, E2E consistent with it."""
    runs = []
    for name, shape in ARCHS.items():
        config = {
            "model_type": "llama",
            "intermediate_size": 3 * shape["hidden_size"],
            "vocab_size": 32000,
            **shape,
        }
        hw = hardware(parse_config(config), H100, tp=TP[name], dtype="bf16")
        c = truth or TimeCoefficients.of(hw, EFFICIENCY)
        for rate, prompt in ((5.0, 600), (10.0, 800), (20.0, 600)):
            stage = _stage(rate, prompt)
            tpot = 0.01
            for _ in range(50):  # fixed point: the batch depends on the step time through Little's law
                guess = Measured(
                    ttft_mean_s=0.05, ttft_p90_s=0.06, e2e_mean_s=0.05 + 247 * tpot, e2e_p90_s=1, tpot_s=tpot
                )
                tpot = predicted_tpot_s(c, stage, guess, 16)
            measured = dataclasses.replace(guess, tpot_s=tpot, e2e_mean_s=0.05 + 247 * tpot)
            runs.append((hw, MeasuredStage(stage=stage, measured=measured, overloaded=False)))
    return runs


def test_uncached_tokens_are_the_last_partial_block_and_at_least_one() -> None:
    assert _stage(1, 600).uncached_tokens(16) == 600 - 592
    assert _stage(1, 592).uncached_tokens(16) == 1  # a fully cached prompt still computes one token


def test_efficiencies_come_back_from_stages_made_with_them() -> None:
    prior = dataclasses.replace(
        EFFICIENCY, weight_bandwidth=0.7, kv_bandwidth=0.7, layer_overhead_s=1e-5, allreduce_latency_s=2e-5
    )
    fitted = fit_efficiency(_synthetic_runs(), prior=prior, block=16, prior_weight=1e-6)
    assert fitted.weight_bandwidth == pytest.approx(EFFICIENCY.weight_bandwidth, rel=0.02)
    assert fitted.kv_bandwidth == pytest.approx(EFFICIENCY.kv_bandwidth, rel=0.02)
    assert fitted.prefill_compute == prior.prefill_compute  # not free: the prior's


def test_overloaded_stages_are_left_out_of_the_fit() -> None:
    runs = _synthetic_runs()
    spoiled = [
        (hw, dataclasses.replace(ms, overloaded=True, measured=dataclasses.replace(ms.measured, tpot_s=1.0)))
        for hw, ms in runs[:3]
    ]
    clean = fit_efficiency(runs[3:], prior=EFFICIENCY, block=16, prior_weight=0.05)
    assert fit_efficiency(spoiled + runs[3:], prior=EFFICIENCY, block=16, prior_weight=0.05) == clean


def test_factors_recover_a_uniformly_slower_engine_from_its_samples() -> None:
    c = TimeCoefficients.of(hardware(parse_config({"model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32000}),
        H100, tp=1, dtype="bf16"), EFFICIENCY)  # fmt: skip
    slower = dataclasses.replace(c, base_s=c.base_s * 1.2, per_sequence_s=c.per_sequence_s * 0.8,
                                 per_context_token_s=c.per_context_token_s * 0.8)  # fmt: skip
    prefill = [
        (n, slower.base_s + slower.per_token_s * n + slower.per_attention_pair_s * n * n)
        for n in (64, 512, 2048)
    ]
    decode = [
        (b, b * 500.0, slower.base_s + slower.per_sequence_s * b + slower.per_context_token_s * b * 500)
        for b in (1, 16, 64)
    ]
    fit = fit_factors(sample_rows(c, prefill, decode), prior_weight=1e-6)
    assert (fit.step, fit.decode, fit.prefill) == pytest.approx((1.2, 0.8, 1.0), rel=0.01)
    assert fit.error_after < 1e-3 < fit.error_before


def test_one_run_moves_only_what_it_measures() -> None:
    hw, ms = _synthetic_runs()[0]
    c = TimeCoefficients.of(hw, EFFICIENCY)
    fit = fit_factors(stage_rows(c, [ms], block=16))
    assert fit.error_before == pytest.approx(0.0, abs=1e-9)
    assert (fit.step, fit.decode, fit.prefill) == pytest.approx((1.0, 1.0, 1.0), abs=1e-3)
    assert stage_rows(c, [dataclasses.replace(ms, overloaded=True)], block=16).shape == (0, 4)
    with pytest.raises(ValueError, match="clean"):
        fit_factors(np.zeros((0, 4)))


def _by_model(runs: list[tuple[Hardware, MeasuredStage]]) -> dict[str, list[tuple[Hardware, MeasuredStage]]]:
    return {name: runs[3 * i : 3 * i + 3] for i, name in enumerate(ARCHS)}


def test_exact_stages_and_a_wrong_prior_choose_the_weakest_pull() -> None:
    prior = dataclasses.replace(EFFICIENCY, weight_bandwidth=0.6, layer_overhead_s=2e-4)
    assert choose_prior_weight(_by_model(_synthetic_runs()), prior=prior, block=16) == PRIOR_WEIGHTS[0]


def test_models_with_quirks_of_their_own_and_a_right_prior_choose_the_strongest_pull() -> None:
    quirks = {"7b-mha": 1.15, "34b": 0.85, "70b": 1.1}  # each model's engine slower or faster than physics
    runs = {
        name: [
            (
                hw,
                dataclasses.replace(
                    ms, measured=dataclasses.replace(ms.measured, tpot_s=ms.measured.tpot_s * quirks[name])
                ),
            )
            for hw, ms in stages
        ]
        for name, stages in _by_model(_synthetic_runs()).items()
    }
    assert choose_prior_weight(runs, prior=EFFICIENCY, block=16) == PRIOR_WEIGHTS[-1]
    with pytest.raises(ValueError, match="two models"):
        choose_prior_weight({"7b-mha": runs["7b-mha"]}, prior=EFFICIENCY, block=16)
