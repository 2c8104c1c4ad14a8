"""`autoscaler simulate` and `router` refuse bad input with exit 2 and one line, before doing any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.sim.scenario import default_scenario_path


def _scenario(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def _huge_rate(tmp_path: Path) -> str:
    default = default_scenario_path().read_text()
    assert "- [0, 100]" in default
    return _scenario(tmp_path, default.replace("- [0, 100]", "- [0, 1e300]"))


CASES = {
    "no jobs": (lambda tmp: ["--jobs", "0"], "--jobs must be at least 1"),
    "bad YAML": (lambda tmp: [_scenario(tmp, "name: x\nworkload: [1, 2\n")], "not valid YAML: line 3"),
    "huge rate": (lambda tmp: [_huge_rate(tmp)], "over 10,000,000 requests"),
}


@pytest.mark.timeout(60)  # a huge rate once ran out of memory after minutes; refused input returns at once
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, message = CASES[case]
    assert main(["simulate", *argv(tmp_path), "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_trace_row_nested_100k_deep_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "deep.jsonl"
    row = '{"arrival_s": 0, "prompt_tokens": 10, "output_tokens": 3}\n'
    trace.write_text(row + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "\n")
    assert main(["simulate", "--trace", str(trace), "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{trace}:2: invalid JSON: nested too deeply" in err, err


def test_a_router_config_with_bad_yaml_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _scenario(tmp_path, "pool: x\nendpoints: [a,\n")
    assert main(["router", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid YAML: line 3" in err, err
