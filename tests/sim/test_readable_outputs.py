"""What a person reads after ``autoscaler simulate``: the report in words, one replicas panel per policy,
the SLO marked on the latency CDFs, a progress bar that moves while runs go in parallel, and the console
saying where everything went. summary.json stays byte-identical whatever the parallelism (test_simulate_cli).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.image
import pytest

from autoscaler.cli.main import main
from autoscaler.sim import policies
from autoscaler.sim.experiment import build_trace, run_experiment
from autoscaler.sim.progress import ProgressBar
from autoscaler.sim.scenario import load_scenario

SCENARIO = """
name: small
seed: 5
profile: llama-3.1-8b/h100-tp1
mode: disaggregated
slo: {ttft_s: 1.0, itl_s: 0.03}
workload:
  kind: synthetic
  duration_s: 180
  lengths: azure-conversation
  arrivals: {kind: points, points: [[0, 3], [90, 9], [180, 3]]}
cluster:
  initial_replicas: {prefill: 1, decode: 1}
  max_replicas: {prefill: 4, decode: 4}
policies: [ours, static, keda]
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SCENARIO)
    return path


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("policy_list", "rows"),
    [
        pytest.param("static", 1, id="one policy: one row"),
        pytest.param("ours,static,keda", 3, id="three: three"),
    ],
)
def test_replicas_png_has_a_row_of_panels_per_policy(
    scenario: Path, tmp_path: Path, policy_list: str, rows: int
) -> None:
    assert main(["simulate", str(scenario), "--out", str(tmp_path), "--policy", policy_list, "--quiet"]) == 0
    height, width, _ = matplotlib.image.imread(tmp_path / "replicas.png").shape
    assert height == pytest.approx((2.3 * rows + 1.2) * 110, abs=2)  # the figure grows by a row per policy
    assert width == pytest.approx(12.0 * 110, abs=2)  # a column per phase
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0


def test_report_says_what_each_policy_is_and_what_the_table_shows(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(scenario), "--out", str(tmp_path), "--jobs", "1", "--quiet"]) == 0
    report = (tmp_path / "report.md").read_text()
    for name in ("ours", "static", "keda"):
        assert f"- **{name}**: {policies.describe(name)}" in report
    assert "**SLO both** is the share of all requests" in report
    assert "Highest SLO attainment: **" in report
    out = capsys.readouterr().out
    for where in ("report.md", "replicas.png", "latency_cdf.png", "summary.json", "decisions", "timeline"):
        assert str(tmp_path / where) in out


def test_every_registered_policy_is_described() -> None:
    for name in policies.NAMES:
        assert policies.describe(name) != policies.describe("no-such-policy")


def test_progress_moves_while_policies_run_in_parallel(scenario: Path) -> None:
    seen: list[tuple[str, float]] = []
    loaded = load_scenario(scenario)
    trace = build_trace(loaded, base_dir=scenario.parent)
    run_experiment(loaded, trace=trace, progress=lambda label, f: seen.append((label, f)), jobs=2)
    for name in loaded.policies:
        fractions = [f for label, f in seen if label == name]
        assert any(0.0 < f < 1.0 for f in fractions), f"{name} reported only {fractions}"
        assert fractions[-1] == 1.0
    assert ("clairvoyant", 1.0) in seen


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        pytest.param(
            [("ours", 0.5), ("static", 0.25)],
            "ours 50%  static 25%  keda ...",
            id="interleaved runs share one line",
        ),
        pytest.param([("ours", 1.0), ("static", 1.0), ("keda", 1.0)], "ours done  static done  keda done"),
    ],
)
def test_the_bar_shows_every_run_on_one_line(calls: list[tuple[str, float]], expected: str) -> None:
    stream = Terminal()
    bar = ProgressBar(stream, labels=("ours", "static", "keda"))
    for label, fraction in calls:
        bar(label, fraction)
    drawn = stream.getvalue()
    assert "\n" not in drawn  # redrawn in place until closed
    assert drawn.rsplit("\r", 1)[-1].rstrip().endswith(expected)
    bar.close()
    assert stream.getvalue().endswith("\n")


def test_off_a_terminal_the_bar_writes_a_line_per_finished_run() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, labels=("ours", "static"))
    for label, fraction in (("ours", 0.5), ("static", 1.0), ("ours", 1.0)):
        bar(label, fraction)
    bar.close()
    assert stream.getvalue() == "static: done\nours: done\n"
