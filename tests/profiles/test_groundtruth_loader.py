"""Reading the ground truth's experiments (``autoscaler.config.groundtruth``) as its README describes them."""

from __future__ import annotations

import pytest

from autoscaler.config.groundtruth import default_root, load_experiments


def test_the_h100_runs_load_with_their_knobs_stages_and_derived_tpot() -> None:
    root = default_root()
    if not root.is_dir():
        pytest.skip(f"SKIPPED LOUDLY: no ground truth at {root} (set AUTOSCALER_GROUNDTRUTH)")
    experiments = load_experiments(root)
    stages = [ms for exp in experiments for ms in exp.stages]
    assert (len(experiments), len(stages), sum(ms.overloaded for ms in stages)) == (16, 24, 4)
    assert {(exp.max_num_seqs, exp.max_num_batched_tokens, exp.max_model_len) for exp in experiments} == {
        (128, 2048, 4096)
    }
    codegen = next(exp for exp in experiments if exp.name.endswith("llama-2-7b-tp1-codegen"))
    first = codegen.stages[0]
    assert (first.stage.rate, first.stage.output_tokens, first.stage.groups) == (5.0, 247, 10)
    m = first.measured
    assert m.tpot_s == pytest.approx((m.e2e_mean_s - m.ttft_mean_s) / 246)
    assert m.tpot_s == pytest.approx(7.257e-3, rel=1e-3)  # stages.csv tpot_derived_ms
