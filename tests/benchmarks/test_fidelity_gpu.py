"""``benchmarks/fidelity_gpu.py --quick`` on the ground truth: leave one model out, keys and targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.config.groundtruth import default_root

REPO = Path(__file__).resolve().parents[2]


def test_leave_one_model_out_replay_meets_the_targets(tmp_path: Path) -> None:
    if not default_root().is_dir():
        pytest.skip(f"SKIPPED LOUDLY: no ground truth at {default_root()} (set AUTOSCALER_GROUNDTRUTH)")
    out = tmp_path / "fidelity.json"
    command = [sys.executable, "benchmarks/fidelity_gpu.py", "--quick", "--out", str(out)]
    subprocess.run(command, cwd=REPO, check=True, timeout=300, capture_output=True)
    result = json.loads(out.read_text())
    assert result["clean_stages"] == 20 and result["overloaded"]["stages"] == 4
    assert {"median_e2e_error", "median_ttft_error", "median_tpot_error", "experiments"} <= result.keys()
    assert result["median_e2e_error"] <= 0.10 and result["median_ttft_error"] <= 0.25
    assert len(result["folds"]) == 4  # one fit per held-out model
