"""``autoscaler profile derive``: a profile for a model not in models/, fits to a run, one-line refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from autoscaler.cli.main import main
from autoscaler.config.profiles import load_profile
from autoscaler.profiles.schema import ProvenanceKind

QWEN3_14B = {  # the fields of Qwen/Qwen3-14B's config.json that matter, plus a few that do not
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 5120,
    "intermediate_size": 17408,
    "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "rope_theta": 1000000,
}  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "qwen3-14b" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(QWEN3_14B))
    return path


def test_a_derived_profile_for_an_unseen_model_is_accepted_by_plan(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "qwen3-14b-h200.yaml"
    assert main(["profile", "derive", "--config", str(config), "--gpu", "h200", "--out", str(out)]) == 0
    profile = load_profile(out)
    assert (profile.model, profile.accelerator, profile.tensor_parallel) == ("qwen3-14b", "H200-141GB", 1)
    assert profile.step.base_s.kind is ProvenanceKind.DERIVED and "4.80 TB/s" in profile.step.base_s.source
    assert profile.kv_cache.bytes_per_token.value == 2 * 40 * 8 * 128 * 2
    assert profile.client is not None
    assert "14.77B parameters" in capsys.readouterr().out
    plan = [
        "plan",
        "--profile",
        str(out),
        "--rate",
        "10",
        "--prompt-tokens",
        "1000",
        "--output-tokens",
        "200",
    ]
    assert main([*plan, "--ttft-p90", "1", "--itl-p90", "0.05", "--json"]) == 0


def test_a_derived_profile_for_an_unseen_model_is_accepted_by_simulate(config: Path, tmp_path: Path) -> None:
    profile = tmp_path / "qwen3-14b-h100.yaml"
    assert main(["profile", "derive", "--config", str(config), "--gpu", "h100", "--out", str(profile)]) == 0
    scenario = {
        "name": "derived",
        "description": "a minute of steady load on a derived profile",
        "seed": 1,
        "profile": str(profile),
        "mode": "aggregated",
        "slo": {"ttft_s": 1.0, "itl_s": 0.05, "percentile": 90},
        "workload": {
            "kind": "synthetic",
            "name": "steady",
            "duration_s": 60,
            "lengths": "azure-conversation",
            "arrivals": {"kind": "steps", "base_rate": 2, "changes": []},
        },
        "cluster": {"initial_replicas": {"aggregated": 1}, "min_replicas": {"aggregated": 1}},
        "policies": ["static"],
    }
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    argv = [
        "simulate",
        str(tmp_path / "scenario.yaml"),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        "--jobs",
        "1",
    ]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "qwen3-14b" in json.dumps(summary)


def test_fp8_and_tensor_parallelism_shrink_the_weights_per_gpu(config: Path, tmp_path: Path) -> None:
    def base(*extra: str) -> float:
        out = tmp_path / f"{'-'.join(extra)}.yaml"
        assert (
            main(["profile", "derive", "--config", str(config), "--gpu", "h100", *extra, "--out", str(out)])
            == 0
        )
        return load_profile(out).step.base_s.value

    assert base("--dtype", "fp8") < base("--dtype", "bf16")
    assert base("--tp", "2") < base("--tp", "1")


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        ({"kv_lora_rank": 512}, [], "unknown architecture field 'kv_lora_rank'"),
        ({}, ["--gpu", "tpu-v9"], "unknown GPU 'tpu-v9'"),
        ({}, ["--tp", "3"], "tensor parallelism 3 does not divide num_attention_heads 40"),
        ({}, ["--gpu", "l4"], "below max_model_len"),  # 27.5 GiB of weights on a 24 GB card
    ],
    ids=["unknown architecture field", "unknown GPU", "TP not dividing the heads", "does not fit"],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, object], args: list[str], message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**QWEN3_14B, **edit}))
    argv = [
        "profile",
        "derive",
        "--config",
        str(path),
        "--gpu",
        "h100",
        *args,
        "--out",
        str(tmp_path / "p.yaml"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("autoscaler profile derive: error: ") and message in err
    assert not (tmp_path / "p.yaml").exists()


def test_fitting_to_profile_samples_reports_factors_and_the_error_before_and_after(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    derived = tmp_path / "derived.yaml"
    assert main(["profile", "derive", "--config", str(config), "--gpu", "h100", "--out", str(derived)]) == 0
    p = load_profile(derived)
    # An engine whose steps cost 30 % more than derived, as `autoscaler profile --samples` would record it.
    samples = {
        "prefill": [{"new_tokens": n, "seconds": 1.3 * p.prefill_time(n)} for n in (128, 512, 2048)],
        "decode": [
            {"batch": b, "context": b * 800.0, "seconds": 1.3 * p.decode_step_time(b, 800)}
            for b in (1, 8, 64)
        ],
    }
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    fitted = tmp_path / "fitted.yaml"
    argv = ["profile", "derive", "--config", str(config), "--gpu", "h100", "--out", str(fitted)]
    assert main([*argv, "--fit-to", str(tmp_path / "samples.json")]) == 0
    printed = capsys.readouterr().out
    before, after = (float(x) for x in re.findall(r"run ([\d.]+)% before, ([\d.]+)% after", printed)[0])
    assert "step x1.30" in printed and before > 20 and after < 1  # pulled toward 1 a little
    fitted_step = load_profile(fitted).decode_step_time(8, 800)
    assert fitted_step == pytest.approx(1.3 * p.decode_step_time(8, 800), rel=0.02)


def _experiment(root: Path) -> Path:
    """A one-stage inference-perf run in the ground truth's layout, its latencies made up."""
    run = root / "run"
    (run / "results").mkdir(parents=True)
    knobs = {
        "model": "Qwen/Qwen3-14B",
        "tensor_parallelism": 1,
        "max_model_len": 4096,
        "max_num_batched_tokens": 2048,
        "max_num_seqs": 128,
    }
    (run / "exp-config.yaml").write_text(yaml.safe_dump(knobs))
    shape = {
        "num_groups": 10,
        "num_prompts_per_group": 10,
        "system_prompt_len": 100,
        "question_len": 466,
        "output_len": 247,
    }
    resolved = {"data": {"shared_prefix": shape}, "load": {"stages": [{"rate": 5.0, "duration": 60}]}}
    (run / "results" / "config.yaml").write_text(yaml.safe_dump(resolved))
    latency = {
        "time_to_first_token": {"mean": 0.05, "p90": 0.06},
        "request_latency": {"mean": 0.05 + 246 * 0.014, "p90": 0.06 + 246 * 0.014},
    }
    metrics = {"successes": {"latency": latency, "prompt_len": {"mean": 592.0}}, "failures": {"count": 0}}
    (run / "results" / "stage_0_lifecycle_metrics.json").write_text(json.dumps(metrics))
    return run


def test_fitting_to_a_ground_truth_run_replays_it_before_and_after(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fitted.yaml"
    argv = ["profile", "derive", "--config", str(config), "--gpu", "h100", "--out", str(out)]
    assert main([*argv, "--fit-to", str(_experiment(tmp_path))]) == 0
    printed = capsys.readouterr().out
    assert "replayed clean stages, median |error| before:" in printed
    after = printed.split("after:")[1].split("\n")[0]
    assert "tpot 0." in after or "tpot 1." in after  # the run's 14 ms TPOT is matched within 2 %
    profile = load_profile(out)
    assert (profile.max_num_seqs, profile.max_num_batched_tokens) == (128, 2048)  # the run's own knobs


def test_measuring_without_an_endpoint_is_still_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--accelerator", "cpu"]) == 2
    assert "--endpoint" in capsys.readouterr().err


def test_fitting_to_a_run_directory_without_its_files_is_bad_input(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty-run").mkdir()
    argv = [
        "profile",
        "derive",
        "--config",
        str(config),
        "--gpu",
        "h100",
        "--fit-to",
        str(tmp_path / "empty-run"),
    ]
    assert main([*argv, "--out", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exp-config.yaml: cannot read" in err
