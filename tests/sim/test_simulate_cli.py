"""``autoscaler simulate``: outputs, summary keys, and the same seed giving the same summary.json bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.cli.main import main

SCENARIO = """
name: tiny
seed: 3
profile: llama-3.1-8b/h100-tp1
mode: disaggregated
slo: {ttft_s: 1.0, itl_s: 0.03}
workload:
  kind: synthetic
  duration_s: 300
  lengths: azure-conversation
  arrivals: {kind: points, points: [[0, 4], [150, 12], [300, 4]]}
cluster:
  initial_replicas: {prefill: 1, decode: 1}
  max_replicas: {prefill: 4, decode: 4}
policies: [ours, static, keda, wva, dynamo]
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(SCENARIO)
    return path


def test_same_seed_same_summary_bytes_whatever_the_parallelism(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One run in this process, one with the policies spread over two worker processes.
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "a"), "--quiet", "--jobs", "1"]) == 0
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "b"), "--quiet", "--jobs", "2"]) == 0
    first = (tmp_path / "a" / "summary.json").read_bytes()
    assert first == (tmp_path / "b" / "summary.json").read_bytes()
    assert (tmp_path / "a" / "requests" / "ours.csv.gz").read_bytes() == (
        tmp_path / "b" / "requests" / "ours.csv.gz"
    ).read_bytes()
    data = json.loads(first)
    assert set(data["policies"]) == {"ours", "static", "keda", "wva", "dynamo"}
    for metrics in data["policies"].values():
        for key in (
            "slo_attainment",
            "gpu_hours",
            "slo_attainment_feasible",
            "gpu_hours_vs_clairvoyant",
            "gpu_hours_vs_lower_bound",
            "gpu_hours_vs_model_oracle",
            "ttft_p90_s",
            "itl_p90_s",
            "scale_events",
        ):
            assert key in metrics
    references = data["references"]
    assert references["clairvoyant"]["slo_attainment"] > 0  # measured, not assumed
    assert 0 < references["lower_bound"]["gpu_hours"] <= references["clairvoyant"]["gpu_hours"]
    assert references["model_oracle"]["gpu_hours"] > 0
    out = capsys.readouterr().out
    assert "clairvoyant" in out and "lower bound" in out and "static" in out


def test_infeasible_requests_are_counted_and_the_ratios_still_shown(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 50 ms TTFT target is beyond the prefill of the longer Azure prompts even on an idle replica."""
    tight = tmp_path / "tight.yaml"
    tight.write_text(scenario.read_text().replace("ttft_s: 1.0", "ttft_s: 0.05"))
    assert main(["simulate", str(tight), "--out", str(tmp_path / "o"), "--policy", "static", "--quiet"]) == 0
    data = json.loads((tmp_path / "o" / "summary.json").read_text())
    infeasible = data["feasibility"]["infeasible"]["prefill_exceeds_ttft"]
    assert 0 < infeasible == data["feasibility"]["requests"] - data["feasibility"]["feasible"]
    static = data["policies"]["static"]
    assert static["slo_attainment_feasible"] > static["slo_attainment"]
    assert static["gpu_hours_vs_clairvoyant"] > 0 and static["gpu_hours_vs_lower_bound"] > 0
    out = capsys.readouterr().out
    assert f"{infeasible} of {data['feasibility']['requests']} requests" in out
    assert "prefill alone" in out


def test_writes_report_and_plots(scenario: Path, tmp_path: Path) -> None:
    assert main(["simulate", str(scenario), "--out", str(tmp_path), "--policy", "static", "--quiet"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "![Replicas over time](replicas.png)" in report
    assert (tmp_path / "replicas.png").stat().st_size > 0
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0
    assert (tmp_path / "timeline" / "static.csv").read_text().startswith("time_s,arrivals,prefill_ready")
    assert '"reason": "Static"' in (tmp_path / "decisions" / "static.jsonl").read_text()


def test_another_seed_changes_the_workload(scenario: Path, tmp_path: Path) -> None:
    assert (
        main(["simulate", str(scenario), "--out", str(tmp_path / "a"), "--policy", "static", "--quiet"]) == 0
    )
    args = [
        "simulate",
        str(scenario),
        "--out",
        str(tmp_path / "b"),
        "--policy",
        "static",
        "--seed",
        "4",
        "--quiet",
    ]
    assert main(args) == 0
    assert (tmp_path / "a" / "summary.json").read_bytes() != (tmp_path / "b" / "summary.json").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "nope"], "unknown policies"),
        (["--trace", "/nonexistent/trace.jsonl"], "trace"),
    ],
    ids=["unknown policy", "missing trace"],
)
def test_bad_input_exits_2_with_one_line(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", str(scenario), "--out", str(tmp_path), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoscaler simulate: error:") and message in err and "\n" not in err
