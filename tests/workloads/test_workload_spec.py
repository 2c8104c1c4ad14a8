"""WorkloadSpec parses scenario YAML; build_workload composes source, hashes and transforms, by seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest
import yaml

from autoscaler.sim.workloads import loaders, spec, trace

from .conftest import TRACES_DIR


def _spec(text: str) -> spec.WorkloadSpec:
    return spec.WorkloadSpec.model_validate(yaml.safe_load(text))


SYNTHETIC = """
kind: synthetic
duration_s: 900
arrivals: {kind: gamma, rate: 4, cv: 2}
lengths: azure-conversation
prefix: {system_prompts: 4, followup_probability: 0.5}
transforms:
  - {kind: compress, factor: 2}
  - {kind: superpose, copies: 2}
"""


def _same(a: trace.Trace, b: trace.Trace) -> bool:
    fields = ("arrival_s", "prompt_tokens", "output_tokens", "block_offsets", "block_hashes")
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def test_synthetic_workload_is_deterministic_by_seed() -> None:
    workload = _spec(SYNTHETIC)
    first = spec.build_workload(workload, rng=np.random.default_rng(3))
    assert _same(first, spec.build_workload(workload, rng=np.random.default_rng(3)))
    assert not _same(first, spec.build_workload(workload, rng=np.random.default_rng(4)))
    assert first.has_hashes
    assert first.mean_rate == pytest.approx(4 * 2 * 2, rel=0.15)
    assert first.duration_s <= 450


def test_adding_a_transform_keeps_the_source_draws() -> None:
    base = spec.build_workload(_spec(SYNTHETIC), rng=np.random.default_rng(3))
    longer = _spec(SYNTHETIC + "  - {kind: truncate, end_s: 100}\n")
    windowed = spec.build_workload(longer, rng=np.random.default_rng(3))
    assert np.array_equal(windowed.arrival_s, base.arrival_s[base.arrival_s < 100])


@pytest.mark.parametrize(
    "arrivals",
    [
        "{kind: poisson, rate: 3}",
        "{kind: weibull, rate: 3, cv: 0.7}",
        "{kind: diurnal, mean_rate: 3, peak_to_trough: 2, period_s: 600}",
        "{kind: steps, base_rate: 1, changes: [[300, 5]]}",
        "{kind: spike, base_rate: 3, peak_rate: 30, start_s: 100, duration_s: 30}",
        "{kind: points, points: [[0, 1], [600, 5]]}",
    ],
    ids=lambda text: text.split(",")[0].removeprefix("{kind: "),
)
def test_every_arrival_process_builds(arrivals: str) -> None:
    workload = _spec(
        f"kind: synthetic\nduration_s: 600\narrivals: {arrivals}\nlengths: mooncake-conversation\n"
    )
    built = spec.build_workload(workload, rng=np.random.default_rng(0))
    assert 300 < len(built) < 3_000
    assert built.arrival_s[-1] < 600


def test_custom_lengths_and_no_hashes() -> None:
    workload = _spec(
        """
kind: synthetic
duration_s: 300
arrivals: {kind: poisson, rate: 10}
lengths:
  prompt: {mean: 2000, median: 1500, p99: 9000, high: 8192}
  output: {mean: 100, median: 80, p99: 400}
hashes: none
"""
    )
    built = spec.build_workload(workload, rng=np.random.default_rng(0))
    assert not built.has_hashes
    assert built.prompt_tokens.max() <= 8192
    assert built.prompt_tokens.mean() == pytest.approx(2000, rel=0.1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("kind: trace\n", "needs `path`"),
        ("kind: synthetic\nduration_s: 10\n", "needs `arrivals` and `duration_s`"),
        ("kind: trace\npath: x.csv\narrivals: {kind: poisson, rate: 1}\n", "are for synthetic workloads"),
        ("kind: synthetic\nduration_s: 10\narrivals: {kind: gama, rate: 1}\n", "does not match"),
        ("kind: synthetic\nduration_s: 10\narrivals: {kind: poisson, rate: -1}\n", "greater than 0"),
        ("kind: trace\npath: x.csv\ntransforms: [{kind: compress}]\n", "factor"),
        ("kind: trace\npath: x.csv\nlenghts: azure-conversation\n", "Extra inputs"),
        ("kind: trace\npath: x.csv\nlengths: azure\n", "lengths"),
    ],
    ids=[
        "trace without a path",
        "synthetic without arrivals",
        "trace with arrivals",
        "unknown arrival kind",
        "negative rate",
        "transform without its parameter",
        "misspelt field",
        "unknown preset",
    ],
)
def test_invalid_specs_are_rejected_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=reason):
        _spec(text)


def test_trace_workload_resolves_relative_paths_and_synthesizes_missing_hashes(
    azure_trace: trace.Trace,
) -> None:
    workload = _spec(
        """
kind: trace
path: AzureLLMInferenceTrace_conv.csv
transforms: [{kind: truncate, start_s: 600, end_s: 1200}]
"""
    )
    built = spec.build_workload(workload, rng=np.random.default_rng(0), base_dir=TRACES_DIR)
    assert built.has_hashes
    inside = (azure_trace.arrival_s >= 600) & (azure_trace.arrival_s < 1200)
    assert np.array_equal(built.prompt_tokens, azure_trace.prompt_tokens[inside])


def test_trace_workload_keeps_the_files_hashes(mooncake_trace: trace.Trace) -> None:
    workload = spec.WorkloadSpec(kind="trace", path=TRACES_DIR / "conversation_trace.jsonl")
    built = spec.build_workload(workload, rng=np.random.default_rng(0))
    assert np.array_equal(built.block_hashes, mooncake_trace.block_hashes)  # type: ignore[arg-type]


def test_missing_trace_file_names_it(tmp_path: Path) -> None:
    workload = spec.WorkloadSpec(kind="trace", path=Path("absent.jsonl"))
    with pytest.raises(loaders.TraceError, match=r"absent\.jsonl: cannot read"):
        spec.build_workload(workload, rng=np.random.default_rng(0), base_dir=tmp_path)
