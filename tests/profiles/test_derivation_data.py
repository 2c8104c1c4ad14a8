"""What a derivation reads (datasheets, efficiencies, model-card architectures) and what it shipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from autoscaler.cli.main import main
from autoscaler.config import derivation
from autoscaler.config.profiles import load_profile, models_dir, shipped_profiles
from autoscaler.profiles.accelerators import AcceleratorError, find_accelerator, parse_accelerators
from autoscaler.profiles.architecture import parse_config
from autoscaler.profiles.schema import ProvenanceKind

REQUIRED_GPUS = ("h100", "h200", "b200", "a100", "l40s", "l4", "mi300x")


def test_every_required_accelerator_has_a_sourced_datasheet_and_efficiencies() -> None:
    catalog = parse_accelerators(yaml.safe_load((models_dir() / "accelerators.yaml").read_text()))
    for name in REQUIRED_GPUS:
        accelerator = find_accelerator(catalog, name)
        figures = [*accelerator.peak_flops.values(), accelerator.memory_bandwidth, accelerator.memory_gib]
        assert all(len(f.source) > 20 for f in [*figures, accelerator.interconnect])
        assert derivation.load_calibration(accelerator).efficiency.weight_bandwidth > 0
    assert derivation.load_calibration(find_accelerator(catalog, "h100"), block="prior").source


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"peak_flops": {"fp8": {"value": 1e15, "source": "ds"}}}, "needs at least bf16"),
        ({"peak_flops": {"bf16": {"value": 1e15}}}, r"expected \{value, source\}"),
        ({"peak_flops": {"bf16": {"value": 1e30, "source": "a typo"}}}, "positive number below"),
    ],
    ids=["no bf16", "no source", "out of bounds"],
)
def test_a_malformed_datasheet_is_refused(entry: dict[str, object], problem: str) -> None:
    with pytest.raises(AcceleratorError, match=problem):
        parse_accelerators({"X": entry})


@pytest.mark.parametrize(
    ("model", "total", "active"),
    [
        ("llama-3.1-70b", 70_553_706_496, None),
        ("qwen3-32b", 32_762_123_264, None),
        ("gpt-oss-20b", 20_914_757_184, 4_187_440_704),  # model card: 21B, 3.6B active without embeddings
    ],
)
def test_model_card_architectures_give_the_published_sizes(
    model: str, total: int, active: int | None
) -> None:
    config, source = derivation.load_config(model)
    arch = parse_config(config)
    assert (arch.total_params, arch.active_params) == (total, active or total)
    assert "huggingface.co" in source


def test_an_unknown_config_reference_is_one_clear_error() -> None:
    with pytest.raises(derivation.DerivationError, match=r"no such config\.json file"):
        derivation.load_config("no-such-model")


def test_shipped_derived_profiles_load_and_say_they_are_derived() -> None:
    derived = [p for p in shipped_profiles() if p.stem.endswith("-derived")]
    models = {p.parent.name for p in derived}
    assert {
        "llama-3.1-8b",
        "llama-3.1-70b",
        "qwen3-32b",
        "qwen3-30b-a3b",
        "mixtral-8x7b",
        "gpt-oss-20b",
    } <= models
    assert {"llama-2-7b", "llama-2-70b", "codellama-34b"} <= models  # the ground truth's
    for path in derived:
        profile = load_profile(path)
        assert profile.step.base_s.kind is ProvenanceKind.DERIVED
        assert profile.client is not None
    for model in ("llama-3.1-8b", "qwen3-32b", "gpt-oss-20b"):
        gpus = {p.stem.split("-")[0] for p in derived if p.parent.name == model}
        assert {"h100", "h200", "a100"} <= gpus


def test_the_stored_h100_efficiencies_are_the_benchmark_s_fit_on_all() -> None:
    result = json.loads((models_dir().parent / "benchmarks/results/fidelity_gpu.json").read_text())
    stored = derivation.load_calibration(derivation.load_accelerator("h100"))
    fitted = result["fit_on_all"]["efficiency"]
    for term, value in fitted.items():
        assert getattr(stored.efficiency, term) == pytest.approx(value, rel=1e-3, abs=1e-9), term
    assert stored.first_token_s == pytest.approx(result["fit_on_all"]["first_token_s"], rel=1e-3)


def test_a_shipped_derived_profile_is_what_derive_makes_today(tmp_path: Path) -> None:
    """models/derive_shipped.sh is rerun after the efficiencies change: the files are not stale."""
    out = tmp_path / "p.yaml"
    argv = [
        "profile",
        "derive",
        "--config",
        "llama-3.1-70b",
        "--model-name",
        "meta-llama/Llama-3.1-70B-Instruct",
    ]
    assert main([*argv, "--gpu", "h200", "--tp", "2", "--out", str(out)]) == 0
    shipped = models_dir() / "llama-3.1-70b" / "h200-tp2-derived.yaml"
    assert load_profile(out) == load_profile(shipped)
