"""`autoscaler plan`: table and JSON output, and exit code 2 with one line on bad input."""

from __future__ import annotations

import json

import pytest

from autoscaler.cli.main import main

BASE = [
    "plan",
    "--profile",
    "models/llama-3.1-8b/h100-tp1.yaml",
    "--rate",
    "120",
    "--prompt-tokens",
    "1200",
    "--output-tokens",
    "250",
    "--ttft-p90",
    "1.0",
    "--itl-p90",
    "0.05",
]


def test_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--prefix-hit-rate", "0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prefill"]["replicas"] >= 1 and out["decode"]["replicas"] >= 1
    assert out["prefill"]["ttft_p90_s"] <= 1.0
    assert out["decode"]["itl_p90_s"] <= 0.05
    assert out["gpus"] == out["prefill"]["gpus"] + out["decode"]["gpus"]


def test_aggregated_json_describes_one_replica_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--mode", "aggregated", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prefill"] == out["decode"]
    assert out["gpus"] == out["prefill"]["gpus"]


def test_table_names_the_binding_constraint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(BASE) == 0
    out = capsys.readouterr().out
    assert "binding" in out and "total GPUs" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--rate": "-5"}, "rate"),
        ({"--profile": "models/nope.yaml"}, "no such profile"),
        ({"--itl-p90": "0.001"}, "below the unloaded"),
        ({"--ttft-p90": "0.001"}, "below the unloaded"),
        ({"--rate": "1e308"}, "arrival rate 1e+308 outside"),
        ({"--prompt-tokens": "1e30"}, "mean prompt length 1e+30 outside"),
        ({"--rate": "nan"}, "arrival rate nan outside"),
        ({"--rate": "5e5"}, "more than 4096 replicas"),
    ],
    ids=[
        "negative rate",
        "missing profile",
        "ITL below one step",
        "TTFT below one prefill",
        "rate 1e308",
        "prompt 1e30",
        "rate NaN",
        "rate beyond the replica cap",
    ],
)
def test_bad_input_exits_2_with_one_line(
    change: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = list(BASE)
    for flag, value in change.items():
        argv[argv.index(flag) + 1] = value
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err


def test_json_prints_null_where_the_table_prints_a_dash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prefill"]["itl_p90_s"] is None and out["decode"]["ttft_p90_s"] is None


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--prompt-cv", "1e300"), ("--prompt-cv", "nan"), ("--arrival-cv", "-1")],
    ids=["huge prompt CV", "prompt CV NaN", "negative arrival CV"],
)
def test_a_coefficient_of_variation_out_of_range_exits_2(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*BASE, flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} must lie in [0, 50]" in err
